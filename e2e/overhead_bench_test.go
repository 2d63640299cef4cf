package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry/gen"
)

// BenchmarkGatewayOverhead (issue #9) measures what the gateway costs over a
// direct connection to the same local upstream, with real load tools:
//
//   - http-keepalive: wrk, HTTP/1.1 with keep-alive, routed by Host through
//     the gateway's port-80 listener;
//   - tls-passthrough: h2load, HTTP/2 over TLS, routed by SNI through the
//     gateway's port-443 listener (Envoy does not terminate the TLS);
//   - http-fixed-rate, tls-fixed-rate: the same two paths at a fixed rate
//     (h2load --rps; plain HTTP/1.1 with --h1) well below saturation, so
//     the added latency is the extra hop's, not queueing for the cores;
//   - http-sequential: one Go client on one keep-alive connection, a
//     request every 2 ms: the HTTP hop without any load tool's behaviour.
//
// Each sub-benchmark runs the direct baseline and the gateway back to back
// with the same tool settings, and reports both through b.ReportMetric.
// The work is bounded by -overhead.seconds per run, not by b.N: each
// sub-benchmark does its runs once whatever b.N is and suppresses ns/op.
//
// h2load (nghttp2 1.52 in Debian bookworm) has no --sni flag. It sends the
// URI's host as SNI and as :authority, so the benchmark asks for
// https://secure.bench.test/ and points the TCP connection elsewhere with
// --connect-to (the gateway's listener, or the upstream itself): no
// /etc/hosts entry and no DNS needed. h2load prints no percentiles, only
// min/max/mean, so the benchmark reads the per-request times it writes with
// --log-file and computes p50/p99 itself.
//
// Needs wrk and h2load (scripts/setup-loadtools.sh); skipped under -short.
func BenchmarkGatewayOverhead(b *testing.B) {
	if testing.Short() {
		b.Skip("e2e: skipped with -short")
	}
	for _, tool := range []string{"wrk", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not found; run scripts/setup-loadtools.sh", tool)
		}
	}
	const (
		webHost    = "web.bench.test"
		secureHost = "secure.bench.test"
	)
	webPort := benchUpstreamHTTP(b)
	tlsPort := benchUpstreamTLS(b, secureHost)

	dir := b.TempDir()
	writeFile(b, dir, "web.yaml", staticEntry("web", webHost, 80, "HTTP", webPort))
	writeFile(b, dir, "secure.yaml", staticEntry("secure", secureHost, 443, "TLS", tlsPort))
	if *overheadEntries > 0 {
		writeFile(b, dir, "generated.yaml", string(gen.ServiceEntries(*overheadEntries, 1)))
	}
	// egressd's defaults: info logging, no Envoy access log file.
	g := startGateway(b, dir, "--log-level", "info", "--no-envoy-access-log")
	eventually(b, 60*time.Second, "gateway routes both hosts", func() error {
		if err := g.wantStatus(webHost, http.StatusOK)(); err != nil {
			return err
		}
		raw, err := net.DialTimeout("tcp", g.Addr(443), 2*time.Second)
		if err != nil {
			return err
		}
		conn := tls.Client(raw, &tls.Config{ServerName: secureHost, InsecureSkipVerify: true})
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		return conn.Handshake()
	})
	pids := gatewayPIDs{envoy: g.EnvoyPID(), egressd: g.cmd.Process.Pid}
	// The baseline: a plain Envoy doing the same routing, in the same run.
	plain := startPlainEnvoy(b, webHost, webPort, secureHost, tlsPort)
	plainPIDs := gatewayPIDs{envoy: plain.pid}

	b.Run("http-keepalive", func(b *testing.B) {
		url := "http://" + webHost + "/"
		direct, baseline, gateway := interleaved(b,
			func() loadResult {
				return runWrk(b, url, net.JoinHostPort("127.0.0.1", strconv.Itoa(webPort)), gatewayPIDs{})
			},
			func() loadResult { return runWrk(b, url, plain.httpAddr, plainPIDs) },
			func() loadResult { return runWrk(b, url, g.Addr(80), pids) })
		reportOverhead(b, direct, gateway, true)
		reportAgainstPlain(b, baseline, gateway, true)
	})
	// The forward-proxy peer: squid allowing the one host (dstdomain), in
	// the same run; a client configured with HTTP_PROXY sends it absolute
	// URIs. egressd's gateway is not a forward proxy: it gets the request
	// as a redirected client sends it, Host header and all.
	b.Run("http-vs-squid", func(b *testing.B) {
		target := "http://" + net.JoinHostPort(webHost, strconv.Itoa(webPort)) + "/"
		squid := startSquid(b, webHost, target)
		direct, peer, gateway := interleavedWith(b, "squid",
			func() loadResult {
				return runWrk(b, "http://"+webHost+"/", net.JoinHostPort("127.0.0.1", strconv.Itoa(webPort)), gatewayPIDs{})
			},
			func() loadResult { return runWrkProxy(b, target, squid.addr, squid.pid) },
			func() loadResult { return runWrk(b, "http://"+webHost+"/", g.Addr(80), pids) })
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(direct.rps, "direct-req/s")
		b.ReportMetric(peer.rps, "squid-req/s")
		b.ReportMetric(gateway.rps, "gw-req/s")
		b.ReportMetric(gateway.rps/peer.rps, "gw/squid")
		if peer.rps > 0 && gateway.rps > 0 && peer.envoyCPU > 0 {
			b.ReportMetric(((gateway.envoyCPU+gateway.egressdCPU)/gateway.rps)/(peer.envoyCPU/peer.rps), "cpu-per-req/squid")
		}
		b.Logf("squid: %.0f req/s, p50 %v, p99 %v, %.2f cores; gateway %.0f req/s (%.2fx of squid)",
			peer.rps, peer.p50, peer.p99, peer.envoyCPU, gateway.rps, gateway.rps/peer.rps)
	})
	// The explicit proxy (absolute URIs, as an HTTP_PROXY client sends
	// them) against squid and against the gateway's transparent HTTP
	// port, interleaved in rounds; the round with the median proxy/squid
	// ratio is reported.
	b.Run("proxy-vs-squid", func(b *testing.B) {
		target := "http://" + net.JoinHostPort(webHost, strconv.Itoa(webPort)) + "/"
		squid := startSquid(b, webHost, target)
		script := filepath.Join(b.TempDir(), "proxy.lua")
		if err := os.WriteFile(script, []byte(fmt.Sprintf("wrk.path = %q\n", "http://"+webHost+"/")), 0o644); err != nil {
			b.Fatal(err)
		}
		type round struct{ squid, transparent, proxy loadResult }
		var rounds []round
		for i := range max(1, *overheadRounds) {
			r := round{
				squid:       runWrkProxy(b, target, squid.addr, squid.pid),
				transparent: runWrk(b, "http://"+webHost+"/", g.Addr(80), pids),
				proxy:       runWrkArgs(b, "http://"+g.Addr(3128)+"/", pids, "-s", script),
			}
			rounds = append(rounds, r)
			b.Logf("round %d: squid %.0f, gateway transparent %.0f, gateway proxy %.0f req/s (proxy/squid %.2fx, proxy/transparent %.2fx)",
				i+1, r.squid.rps, r.transparent.rps, r.proxy.rps, r.proxy.rps/r.squid.rps, r.proxy.rps/r.transparent.rps)
		}
		slices.SortFunc(rounds, func(x, y round) int { return cmp.Compare(x.proxy.rps/x.squid.rps, y.proxy.rps/y.squid.rps) })
		m := rounds[len(rounds)/2]
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(m.squid.rps, "squid-req/s")
		b.ReportMetric(m.transparent.rps, "transparent-req/s")
		b.ReportMetric(m.proxy.rps, "proxy-req/s")
		b.ReportMetric(m.proxy.rps/m.squid.rps, "proxy/squid")
		b.ReportMetric(m.proxy.rps/m.transparent.rps, "proxy/transparent")
	})
	b.Run("tls-passthrough", func(b *testing.B) {
		url := "https://" + secureHost + "/"
		direct, baseline, gateway := interleaved(b,
			func() loadResult {
				return runH2load(b, url, net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), gatewayPIDs{}, *overheadConns)
			},
			func() loadResult { return runH2load(b, url, plain.tlsAddr, plainPIDs, *overheadConns) },
			func() loadResult { return runH2load(b, url, g.Addr(443), pids, *overheadConns) })
		reportOverhead(b, direct, gateway, true)
		reportAgainstPlain(b, baseline, gateway, true)
	})
	// Below saturation: a fixed request rate, so the latency is the extra
	// hop's and not queueing for the shared cores.
	rate := func(b *testing.B, url, directAddr, plainAddr, gatewayAddr string, extra ...string) {
		conns := *overheadRateConns
		perConn := strconv.Itoa(max(1, *overheadRate/conns))
		args := append([]string{"--rps", perConn}, extra...)
		direct := runH2load(b, url, directAddr, gatewayPIDs{}, conns, args...)
		baseline := runH2load(b, url, plainAddr, plainPIDs, conns, args...)
		gateway := runH2load(b, url, gatewayAddr, pids, conns, args...)
		reportOverhead(b, direct, gateway, false)
		reportAgainstPlain(b, baseline, gateway, false)
	}
	b.Run("http-fixed-rate", func(b *testing.B) {
		rate(b, "http://"+webHost+"/", net.JoinHostPort("127.0.0.1", strconv.Itoa(webPort)), plain.httpAddr, g.Addr(80), "--h1")
	})
	b.Run("tls-fixed-rate", func(b *testing.B) {
		rate(b, "https://"+secureHost+"/", net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), plain.tlsAddr, g.Addr(443))
	})
	// One Go client, one keep-alive connection, a request every 2 ms: no
	// load tool's own behaviour in the figure, only the hops.
	b.Run("http-sequential", func(b *testing.B) {
		url := "http://" + webHost + "/"
		direct := sequentialGets(b, url, net.JoinHostPort("127.0.0.1", strconv.Itoa(webPort)))
		gateway := sequentialGets(b, url, g.Addr(80))
		reportOverhead(b, direct, gateway, false)
	})
}

// sequentialGets sends GET url over one keep-alive connection to addr,
// one request every 2 ms for -overhead.seconds (at most 5 s), and returns
// the latencies' p50 and p99.
func sequentialGets(b *testing.B, url, addr string) loadResult {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	const every = 2 * time.Millisecond
	n := int(time.Duration(min(*overheadSeconds, 5)) * time.Second / every)
	tick := time.NewTicker(every)
	defer tick.Stop()
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		<-tick.C
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s via %s: %s", url, addr, resp.Status)
		}
		lat = append(lat, time.Since(t0))
	}
	wall := time.Since(start)
	return loadResult{rps: float64(n) / wall.Seconds(), p50: percentile(lat, 50), p99: percentile(lat, 99), wall: wall, requestsTotal: n}
}

var (
	overheadSeconds = flag.Int("overhead.seconds", 10, "BenchmarkGatewayOverhead: seconds of load per run")
	overheadThreads = flag.Int("overhead.threads", 2, "BenchmarkGatewayOverhead: load tool threads")
	overheadConns   = flag.Int("overhead.conns", 50, "BenchmarkGatewayOverhead: concurrent connections (one request in flight on each)")
	overheadRounds  = flag.Int("overhead.rounds", 3, "BenchmarkGatewayOverhead: interleaved rounds of direct, plain Envoy and gateway runs; the median of each is reported")
	// The fixed-rate runs: h2load --rps per connection.
	overheadEntries   = flag.Int("overhead.entries", 0, "BenchmarkGatewayOverhead: generated ServiceEntries loaded beside the benchmark's two (the issue asks for 10 and 10,000)")
	overheadRate      = flag.Int("overhead.rate", 1000, "BenchmarkGatewayOverhead fixed-rate runs: requests per second in all")
	overheadRateConns = flag.Int("overhead.rate-conns", 10, "BenchmarkGatewayOverhead fixed-rate runs: connections")
)

// loadResult is one load tool run: throughput, latency, and the CPU the
// parts used while it ran.
type loadResult struct {
	rps           float64
	p50, p99      time.Duration
	toolCPU       float64 // cores: load tool CPU time / wall time
	upstreamCPU   float64 // cores: this test process (the upstream servers)
	envoyCPU      float64 // cores: the gateway's Envoy (0 for direct runs)
	egressdCPU    float64 // cores: egressd (0 for direct runs)
	wall          time.Duration
	requestsTotal int
}

// reportOverhead reports a direct and a gateway run, and whether issue
// #9's targets hold: the added p50 always, the throughput ratio only for
// saturation runs (at a fixed rate both carry the rate).
func reportOverhead(b *testing.B, direct, gateway loadResult, saturation bool) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	added := gateway.p50 - direct.p50
	defer func() {
		testkit.Target(b, fmt.Sprintf("gateway adds < 0.3 ms p50 (%v)", added.Round(time.Microsecond)), added < 300*time.Microsecond)
		if saturation {
			testkit.Target(b, fmt.Sprintf(">= 0.9x direct throughput (%.2fx)", gateway.rps/direct.rps), gateway.rps >= 0.9*direct.rps)
		}
	}()
	b.ReportMetric(0, "ns/op") // bounded by time, not b.N
	b.ReportMetric(direct.rps, "direct-req/s")
	b.ReportMetric(gateway.rps, "gw-req/s")
	b.ReportMetric(gateway.rps/direct.rps, "gw/direct")
	b.ReportMetric(us(direct.p50), "direct-p50-µs")
	b.ReportMetric(us(direct.p99), "direct-p99-µs")
	b.ReportMetric(us(gateway.p50), "gw-p50-µs")
	b.ReportMetric(us(gateway.p99), "gw-p99-µs")
	b.ReportMetric(us(gateway.p50-direct.p50), "added-p50-µs")
	if direct.wall > 0 && direct.toolCPU == 0 && direct.upstreamCPU == 0 {
		// sequentialGets: the client is this process; no CPU measured.
		b.Logf("direct:  %.0f req/s, p50 %v, p99 %v, %d requests", direct.rps, direct.p50, direct.p99, direct.requestsTotal)
		b.Logf("gateway: %.0f req/s, p50 %v, p99 %v, %d requests", gateway.rps, gateway.p50, gateway.p99, gateway.requestsTotal)
		return
	}
	b.Logf("direct:  %.0f req/s, p50 %v, p99 %v, %d requests; CPU cores: load tool %.2f, upstream %.2f",
		direct.rps, direct.p50, direct.p99, direct.requestsTotal, direct.toolCPU, direct.upstreamCPU)
	b.Logf("gateway: %.0f req/s, p50 %v, p99 %v, %d requests; CPU cores: load tool %.2f, upstream %.2f, envoy %.2f, egressd %.2f",
		gateway.rps, gateway.p50, gateway.p99, gateway.requestsTotal, gateway.toolCPU, gateway.upstreamCPU, gateway.envoyCPU, gateway.egressdCPU)
}

// interleaved runs direct, plain and gateway -overhead.rounds times, in
// turn, so that the machine's drift during the benchmark falls on all
// three alike, and returns the round whose gateway/plain ratio is the
// median: a round's three runs are seconds apart, so their ratios are
// steadier than the runs themselves. Every round is logged.
func interleaved(b *testing.B, direct, plain, gateway func() loadResult) (loadResult, loadResult, loadResult) {
	return interleavedWith(b, "plain Envoy", direct, plain, gateway)
}

// interleavedWith is interleaved against another peer, named in the log.
func interleavedWith(b *testing.B, peer string, direct, plain, gateway func() loadResult) (loadResult, loadResult, loadResult) {
	type round struct{ d, p, g loadResult }
	var rounds []round
	for i := range max(1, *overheadRounds) {
		r := round{direct(), plain(), gateway()}
		rounds = append(rounds, r)
		b.Logf("round %d: direct %.0f, %s %.0f, gateway %.0f req/s (gateway/%s %.2fx)",
			i+1, r.d.rps, peer, r.p.rps, r.g.rps, peer, r.g.rps/r.p.rps)
	}
	slices.SortFunc(rounds, func(x, y round) int { return cmp.Compare(x.g.rps/x.p.rps, y.g.rps/y.p.rps) })
	m := rounds[len(rounds)/2]
	return m.d, m.p, m.g
}

// reportAgainstPlain reports the gateway against the plain Envoy of the
// same run, and whether issue #17's targets hold: throughput >= 0.95x at
// saturation; below it, the p50 the gateway adds over the upstream within
// 10 % of the plain Envoy's. CPU per request (Envoy and egressd) is
// compared at saturation, target <= 1.1x.
func reportAgainstPlain(b *testing.B, plain, gateway loadResult, saturation bool) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(plain.rps, "plain-req/s")
	b.ReportMetric(gateway.rps/plain.rps, "gw/plain")
	b.ReportMetric(us(plain.p50), "plain-p50-µs")
	b.ReportMetric(us(plain.p99), "plain-p99-µs")
	b.Logf("plain Envoy: %.0f req/s, p50 %v, p99 %v; CPU cores: load tool %.2f, upstream %.2f, envoy %.2f",
		plain.rps, plain.p50, plain.p99, plain.toolCPU, plain.upstreamCPU, plain.envoyCPU)
	if saturation {
		testkit.Target(b, fmt.Sprintf(">= 0.95x a plain Envoy's throughput (%.2fx)", gateway.rps/plain.rps), gateway.rps >= 0.95*plain.rps)
		if plain.rps > 0 && gateway.rps > 0 && plain.envoyCPU > 0 {
			perPlain := plain.envoyCPU / plain.rps
			perGateway := (gateway.envoyCPU + gateway.egressdCPU) / gateway.rps
			b.ReportMetric(perGateway/perPlain, "cpu-per-req/plain")
			testkit.Target(b, fmt.Sprintf("CPU per request <= 1.1x a plain Envoy's (%.2fx: %.0f µs against %.0f µs)",
				perGateway/perPlain, perGateway*1e6, perPlain*1e6), perGateway <= 1.1*perPlain)
		}
		return
	}
	b.ReportMetric(us(gateway.p50-plain.p50), "added-p50-over-plain-µs")
	testkit.Target(b, fmt.Sprintf("p50 within 10%% of a plain Envoy's (%v against %v)", gateway.p50.Round(time.Microsecond), plain.p50.Round(time.Microsecond)),
		float64(gateway.p50) <= 1.1*float64(plain.p50))
}

// runWrk loads url with wrk, connecting to addr (the Host header keeps the
// URL's host).
func runWrk(b *testing.B, url, addr string, pids gatewayPIDs) loadResult {
	b.Helper()
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/"), "http://")
	return runWrkArgs(b, "http://"+addr+"/", pids, "-H", "Host: "+host)
}

// runWrkArgs runs wrk against target with the benchmark's settings and
// extra arguments, and reads its figures.
func runWrkArgs(b *testing.B, target string, pids gatewayPIDs, extra ...string) loadResult {
	b.Helper()
	args := append([]string{
		"-t", strconv.Itoa(*overheadThreads),
		"-c", strconv.Itoa(*overheadConns),
		"-d", fmt.Sprintf("%ds", *overheadSeconds),
		"--timeout", "5s",
		"--latency",
	}, extra...)
	out, res := runLoad(b, pids, "wrk", append(args, target)...)
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(out); m != nil {
		b.Fatalf("wrk: %s non-2xx responses:\n%s", m[1], out)
	}
	if strings.Contains(out, "Socket errors:") {
		b.Logf("wrk reported socket errors:\n%s", out)
	}
	var err error
	if res.rps, err = wrkFloat(out, `Requests/sec:\s+([\d.]+)`); err != nil {
		b.Fatalf("wrk: %v:\n%s", err, out)
	}
	if res.p50, err = wrkLatency(out, "50%"); err != nil {
		b.Fatalf("wrk: %v:\n%s", err, out)
	}
	if res.p99, err = wrkLatency(out, "99%"); err != nil {
		b.Fatalf("wrk: %v:\n%s", err, out)
	}
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
		res.requestsTotal, _ = strconv.Atoi(m[1])
	}
	return res
}

func wrkFloat(out, pattern string) (float64, error) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no match for %q", pattern)
	}
	return strconv.ParseFloat(m[1], 64)
}

// wrkLatency reads a line of wrk's --latency distribution, e.g.
// "     50%  412.00us" or "     99%    1.23ms".
func wrkLatency(out, pct string) (time.Duration, error) {
	m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(pct) + `\s+([\d.]+)(us|ms|s)\s*$`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %s latency line", pct)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit)), nil
}

// runH2load loads url (HTTP/2 over TLS, SNI from the URL's host; or what
// extra asks for, e.g. --h1 for plain HTTP/1.1, --rps for a fixed rate)
// with h2load over conns connections, connecting to addr.
func runH2load(b *testing.B, url, addr string, pids gatewayPIDs, conns int, extra ...string) loadResult {
	b.Helper()
	logPath := filepath.Join(b.TempDir(), "h2load.log")
	args := []string{
		"-t", strconv.Itoa(min(*overheadThreads, conns)),
		"-c", strconv.Itoa(conns),
		"-m", "1", // one request in flight per connection, as with wrk
		"-D", strconv.Itoa(*overheadSeconds),
		"--connect-to", addr,
		"--log-file", logPath,
	}
	args = append(args, extra...)
	out, res := runLoad(b, pids, "h2load", append(args, url)...)
	m := regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("h2load: no requests line:\n%s", out)
	}
	res.requestsTotal, _ = strconv.Atoi(m[3])
	if m[4] != "0" || m[5] != "0" || m[6] != "0" || res.requestsTotal == 0 {
		b.Fatalf("h2load: failed requests:\n%s", out)
	}
	// With -D, the 2xx count may include responses that arrived after the
	// measurement ended; check that there is no other status.
	if sc := regexp.MustCompile(`status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`).FindStringSubmatch(out); sc == nil || sc[1] != "0" || sc[2] != "0" || sc[3] != "0" {
		b.Fatalf("h2load: not every response was 2xx:\n%s", out)
	}
	var err error
	if res.rps, err = wrkFloat(out, `finished in [\d.]+m?s, ([\d.]+) req/s`); err != nil {
		b.Fatalf("h2load: %v:\n%s", err, out)
	}
	lat, err := h2loadLatencies(logPath)
	if err != nil {
		b.Fatalf("h2load log: %v", err)
	}
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	return res
}

// h2loadLatencies reads h2load's --log-file: one line per request, tab
// separated: start time (µs since the epoch), status code, duration in µs.
func h2loadLatencies(path string) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lat []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %q: want 3 tab-separated fields", sc.Text())
		}
		us, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lat) == 0 {
		return nil, errors.New("no requests logged")
	}
	return lat, nil
}

// percentile is the nearest-rank percentile p of d (d is sorted in place).
func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	i := int(float64(len(d))*p/100+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// gatewayPIDs names the gateway's processes whose CPU time a run measures;
// zero for direct runs.
type gatewayPIDs struct{ envoy, egressd int }

// runLoad runs a load tool with a hard time limit and measures the CPU the
// tool, this process (the upstreams), Envoy and egressd used while it ran.
func runLoad(b *testing.B, pids gatewayPIDs, name string, args ...string) (string, loadResult) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*overheadSeconds)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	selfBefore := selfCPU()
	envoyBefore, egressdBefore := procCPU(pids.envoy), procCPU(pids.egressd)
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v:\n%s", name, strings.Join(args, " "), err, out.String())
	}
	res := loadResult{wall: wall}
	secs := wall.Seconds()
	res.toolCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / secs
	res.upstreamCPU = (selfCPU() - selfBefore).Seconds() / secs
	if pids.envoy > 0 {
		res.envoyCPU = (procCPU(pids.envoy) - envoyBefore).Seconds() / secs
		res.egressdCPU = (procCPU(pids.egressd) - egressdBefore).Seconds() / secs
	}
	return out.String(), res
}

// selfCPU is the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time (user + system) process pid used so far, from
// /proc/<pid>/stat (clock ticks of 1/100 s, the Linux default USER_HZ).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from its closing parenthesis. utime and stime are fields 14
	// and 15, so 11 and 12 after it.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// benchUpstreamHTTP starts a fast HTTP/1.1 upstream with a small body.
func benchUpstreamHTTP(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: smallBody(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// benchUpstreamTLS starts the same upstream over TLS (HTTP/2 and HTTP/1.1 by
// ALPN) with a fresh self-signed certificate for name.
func benchUpstreamTLS(b *testing.B, name string) int {
	b.Helper()
	leaf := testkit.Issue(b, testkit.Spec{CommonName: name, DNSNames: []string{name}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, OmitBasicConstraints: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler:           smallBody(),
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	b.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func smallBody() http.Handler {
	body := []byte("ok\n")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
}
