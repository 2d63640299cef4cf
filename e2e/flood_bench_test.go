package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/internal/testkit"
)

var (
	floodDNS  = flag.Int("flood.dns", 100000, "BenchmarkDenialFlood: refused DNS queries per run")
	floodHTTP = flag.Int("flood.http", 20000, "BenchmarkDenialFlood: denied HTTP requests per run")
)

// floodResult is one flood of denials against one gateway.
type floodResult struct {
	denials  int
	elapsed  time.Duration // from the first denial until all were counted
	logBytes int64         // what egressd's log grew by meanwhile
	lost     int           // denials missing from the metrics, the store or a consumer
}

// BenchmarkDenialFlood floods the DNS proxy with refused queries and the
// gateway with denied HTTP requests (from one client, to a few names, as a
// misbehaving workload does), first with a log line per denial
// (--decision-log-window 0), then folded (the 1 s default), in the same
// run. It reports the log's growth per second and per denial, and the
// denials lost by the metrics and the store, which must be 0 either way.
// Bounded: -flood.dns queries and -flood.http requests per run, at most
// 60 s each.
func BenchmarkDenialFlood(b *testing.B) {
	if testing.Short() {
		b.Skip("e2e: skipped with -short")
	}
	results := map[string]floodResult{}
	for _, run := range []struct{ name, window string }{{"every-line", "0"}, {"folded-1s", "1s"}} {
		b.Run(run.name, func(b *testing.B) {
			dir := b.TempDir()
			writeFile(b, dir, "listed.yaml", staticEntry("listed", "listed.flood.test", 80, "HTTP", testkit.FreePort(b)))
			total := *floodDNS + *floodHTTP
			g := startGateway(b, dir, "--log-level", "info", "--no-envoy-access-log", "--decision-log-window", run.window,
				"--decisions-kept", fmt.Sprint(total+1000))
			eventually(b, 60*time.Second, "gateway serving", g.wantStatus("warmup.flood.test", 403))
			r := flood(b, g, *floodDNS, *floodHTTP)
			results[run.name] = r
			perSecond := float64(r.logBytes) / r.elapsed.Seconds()
			b.ReportMetric(float64(r.denials)/r.elapsed.Seconds(), "denials/s")
			b.ReportMetric(perSecond, "log-bytes/s")
			b.ReportMetric(float64(r.logBytes)/float64(r.denials), "log-bytes/denial")
			b.ReportMetric(float64(r.lost), "lost")
			b.Logf("%s: %d denials in %s, log grew %d bytes (%.0f B/s), %d lost; target 0 lost: %s",
				run.name, r.denials, r.elapsed.Round(time.Millisecond), r.logBytes, perSecond, r.lost, metOrMissed(r.lost == 0))
			if base, ok := results["every-line"]; ok && run.name != "every-line" {
				ratio := (float64(r.logBytes) / r.elapsed.Seconds()) / (float64(base.logBytes) / base.elapsed.Seconds())
				b.ReportMetric(ratio, "log-rate-vs-every-line")
				b.Logf("log bytes/s folded vs every line: %.4fx (%s)", ratio, metOrMissed(ratio < 0.1))
			}
		})
	}
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// flood sends the denials and waits until egressd has counted every one.
func flood(b *testing.B, g *Gateway, dnsQueries, httpRequests int) floodResult {
	b.Helper()
	before := logSize(b, g)
	base := map[string]float64{}
	for _, layer := range []string{"dns", "http"} {
		base[layer] = g.metric(b, fmt.Sprintf(`egressd_decisions_total{layer=%q,reason="not_in_registry",verdict="deny"}`, layer))
	}
	baseStored := g.storedDenials(b)
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.flood.test", i)
	}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var wg sync.WaitGroup
	var sentDNS, sentHTTP atomic.Int64
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", g.DNSAddr)
			if err != nil {
				return
			}
			defer c.Close()
			co := &dns.Conn{Conn: c}
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(dnsQueries) {
					return
				}
				m := new(dns.Msg)
				m.SetQuestion(names[i%int64(len(names))]+".", dns.TypeA)
				_ = co.SetDeadline(time.Now().Add(time.Second))
				if co.WriteMsg(m) != nil {
					continue
				}
				if r, err := co.ReadMsg(); err == nil && r.Rcode == dns.RcodeNameError {
					sentDNS.Add(1)
				}
			}
		}()
	}
	var nextHTTP atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, g.Addr(80))
				},
			}}
			defer client.CloseIdleConnections()
			for time.Now().Before(deadline) {
				i := nextHTTP.Add(1) - 1
				if i >= int64(httpRequests) {
					return
				}
				resp, err := client.Get("http://" + names[i%int64(len(names))] + "/")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusForbidden {
					sentHTTP.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	want := map[string]float64{"dns": float64(sentDNS.Load()), "http": float64(sentHTTP.Load())}
	counted := func() bool {
		for layer, n := range want {
			if g.metric(b, fmt.Sprintf(`egressd_decisions_total{layer=%q,reason="not_in_registry",verdict="deny"}`, layer))-base[layer] < n {
				return false
			}
		}
		return true
	}
	for wait := time.Now().Add(30 * time.Second); !counted() && time.Now().Before(wait); {
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // the last window's summaries
	r := floodResult{denials: int(want["dns"] + want["http"]), elapsed: elapsed, logBytes: logSize(b, g) - before}
	for layer, n := range want {
		got := g.metric(b, fmt.Sprintf(`egressd_decisions_total{layer=%q,reason="not_in_registry",verdict="deny"}`, layer)) - base[layer]
		if got < n {
			r.lost += int(n - got)
		}
	}
	if stored := g.storedDenials(b) - baseStored; stored < r.denials {
		r.lost += r.denials - stored
	}
	for _, c := range []string{"stream", "log", "metrics", "store"} {
		r.lost += int(g.metric(b, fmt.Sprintf(`egressd_decisions_dropped_total{consumer=%q}`, c)))
	}
	return r
}

// logSize is the size of egressd's log file now.
func logSize(b *testing.B, g *Gateway) int64 {
	b.Helper()
	info, err := os.Stat(g.logPath)
	if err != nil {
		b.Fatal(err)
	}
	return info.Size()
}

// storedDenials counts the denials the store holds (the API's count).
func (g *Gateway) storedDenials(b *testing.B) int {
	b.Helper()
	var out struct {
		Count int `json:"count"`
	}
	if err := g.tryAPIGet("/api/v1/decisions?verdict=deny&limit=10000000", &out); err != nil {
		b.Fatal(err)
	}
	return out.Count
}
