package dnsproxy

// Real-peer tests: a real upstream resolver (Debian's unbound, serving a
// test zone on loopback) and real clients (dig from dnsutils, Go's
// resolver) against the proxy on 127.0.0.1:0. They are skipped under
// -short; without the tools they fail and say to run `make setup`
// (scripts/setup-dns-tools.sh installs them).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// requireTool returns the path of a tool the real-peer tests need. Under
// -short the test is skipped; a missing tool fails it.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("real-peer test: skipped with -short")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make setup` (scripts/setup-dns-tools.sh installs unbound, dnsutils and dnsperf)", name)
	}
	return p
}

// testZoneConf is the unbound zone data mirroring the fake upstream's:
// example.test (the allowlisted names), unlisted.test (a CNAME target the
// allowlist does not list), example.net (unlisted) and cluster.local (the
// pass-through zone). big.example.test has 100 A records (about 1.6 KB,
// more than the 1232-byte UDP limit the tests give unbound).
func testZoneConf() string {
	var b strings.Builder
	zone := func(name string) { fmt.Fprintf(&b, "  local-zone: %q static\n", name) }
	data := func(rr string) {
		if strings.Contains(rr, `"`) {
			fmt.Fprintf(&b, "  local-data: '%s'\n", rr) // unbound's quoting for TXT data
			return
		}
		fmt.Fprintf(&b, "  local-data: %q\n", rr)
	}
	zone("example.test.")
	data("example.test. 3600 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 30")
	data("www.example.test. 300 IN A 192.0.2.10")
	data("www.example.test. 300 IN AAAA 2001:db8::10")
	data("a.svc.example.test. 300 IN A 192.0.2.20")
	data("rebind.example.test. 300 IN A 127.0.0.1")
	data("private.example.test. 300 IN A 10.0.0.5")
	data("metadata.example.test. 300 IN A 169.254.169.254")
	data("mixed.example.test. 300 IN A 10.0.0.5")
	data("mixed.example.test. 300 IN A 192.0.2.40")
	data("listed.example.test. 300 IN A 10.0.0.6")
	data("alias.example.test. 300 IN CNAME cdn.unlisted.test.")
	data(`static.example.test. 300 IN TXT "static txt"`)
	for i := 1; i <= 100; i++ {
		data(fmt.Sprintf("big.example.test. 300 IN A 192.0.2.%d", i))
	}
	zone("unlisted.test.")
	data("cdn.unlisted.test. 300 IN A 192.0.2.30")
	zone("example.net.")
	data("evil.example.net. 300 IN A 192.0.2.66")
	zone("cluster.local.")
	data("kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10")
	return b.String()
}

// unbound is one unbound process started by a test.
type unbound struct {
	addr string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startUnbound runs unbound in the foreground on a free loopback port with
// serverConf (zone data, forward zones) added to its server: clause, waits
// until it answers, and stops it when the test ends.
func startUnbound(t testing.TB, serverConf, extraConf string) *unbound {
	t.Helper()
	bin := requireTool(t, "unbound")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		u, err := tryUnbound(t, bin, serverConf, extraConf)
		if err == nil {
			return u
		}
		lastErr = err
	}
	t.Fatalf("unbound did not start: %v", lastErr)
	return nil
}

func tryUnbound(t testing.TB, bin, serverConf, extraConf string) (*unbound, error) {
	// Find a port free for both UDP and TCP, then hand it to unbound.
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	_ = ln.Close()

	dir := t.TempDir()
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1@%[1]d
  port: %[1]d
  do-daemonize: no
  chroot: ""
  username: ""
  directory: %[2]q
  pidfile: %[3]q
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  # UDP answers above 1232 bytes are truncated (the DNS flag day 2020
  # size), so big.example.test needs TCP whatever the client offers.
  max-udp-size: 1232
%[4]s
remote-control:
  control-enable: no
%[5]s`, port, dir, filepath.Join(dir, "unbound.pid"), serverConf, extraConf)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if check, err := exec.LookPath("unbound-checkconf"); err == nil {
		if out, err := exec.Command(check, path).CombinedOutput(); err != nil {
			t.Fatalf("unbound-checkconf: %v\n%s\n%s", err, out, conf)
		}
	}
	u := &unbound{addr: fmt.Sprintf("127.0.0.1:%d", port), log: &lockedBuffer{}, done: make(chan struct{})}
	u.cmd = exec.Command(bin, "-d", "-c", path)
	u.cmd.Stdout, u.cmd.Stderr = u.log, u.log
	if err := u.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = u.cmd.Wait(); close(u.done) }()
	t.Cleanup(u.stop)

	// Wait until it answers (it is a separate process: poll).
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-u.done:
			return nil, fmt.Errorf("unbound exited: %s", u.log.String())
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion("version.server.", dns.TypeTXT)
		m.Question[0].Qclass = dns.ClassCHAOS
		if _, _, err := c.Exchange(m, u.addr); err == nil {
			return u, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	u.stop()
	return nil, fmt.Errorf("unbound on %s did not answer within 10s: %s", u.addr, u.log.String())
}

// stop ends the unbound process this test started (by its own pid).
func (u *unbound) stop() {
	select {
	case <-u.done:
		return
	default:
	}
	_ = u.cmd.Process.Kill()
	<-u.done
}

// digResult is what dig printed, parsed.
type digResult struct {
	status  string
	flags   []string
	answers []string // "TYPE value"
	ede     string   // the EDE line, if any
	raw     string
}

var (
	statusRe = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRe  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
	edeRe    = regexp.MustCompile(`; EDE: (.*)`)
)

// dig runs the real dig against addr.
func dig(t testing.TB, addr, name, qtype string, args ...string) digResult {
	t.Helper()
	bin := requireTool(t, "dig")
	host, port, _ := net.SplitHostPort(addr)
	argv := append([]string{"@" + host, "-p", port, "+time=3", "+tries=1", name, qtype}, args...)
	out, err := exec.Command(bin, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	r := digResult{raw: string(out)}
	if m := statusRe.FindStringSubmatch(r.raw); m != nil {
		r.status = m[1]
	}
	if m := flagsRe.FindStringSubmatch(r.raw); m != nil {
		r.flags = strings.Fields(m[1])
	}
	if m := edeRe.FindStringSubmatch(r.raw); m != nil {
		r.ede = m[1]
	}
	inAnswer := false
	for _, line := range strings.Split(r.raw, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case inAnswer && strings.TrimSpace(line) == "":
			inAnswer = false
		case inAnswer:
			f := strings.Fields(line)
			if len(f) >= 5 {
				r.answers = append(r.answers, f[3]+" "+strings.Join(f[4:], " "))
			}
		}
	}
	return r
}

func (r digResult) hasFlag(f string) bool {
	for _, x := range r.flags {
		if x == f {
			return true
		}
	}
	return false
}

// goResolver is Go's own resolver, pointed at addr.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// realSetup starts unbound with the test zone and a proxy in mode that
// uses it.
func realSetup(t *testing.T, c Config) (*unbound, *Server, *decisions, string) {
	t.Helper()
	requireTool(t, "dig")
	u := startUnbound(t, testZoneConf(), "")
	c.Listen = "127.0.0.1:0"
	if c.Upstreams == nil {
		c.Upstreams = []string{u.addr}
	}
	s, d := newTestServer(t, c)
	return u, s, d, startServer(t, s)
}

// TestRealGatewayMode: dig and Go's resolver against the proxy in gateway
// mode, unbound upstream.
func TestRealGatewayMode(t *testing.T) {
	_, s, d, addr := realSetup(t, Config{GatewayIPs: []netip.Addr{gw4, gw6}})
	ctx := context.Background()
	res := goResolver(addr)

	t.Run("allowed exact name", func(t *testing.T) {
		r := dig(t, addr, "www.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 198.51.100.1"}) {
			t.Errorf("dig: %s %v\n%s", r.status, r.answers, r.raw)
		}
		ips, err := res.LookupHost(ctx, "www.example.test")
		sort.Strings(ips)
		if err != nil || !cmp.Equal(ips, []string{"198.51.100.1", "2001:db8:ffff::1"}) {
			t.Errorf("Go resolver: %v %v", ips, err)
		}
	})
	t.Run("allowed wildcard name", func(t *testing.T) {
		r := dig(t, addr, "deep.a.svc.example.test", "A", "+tcp")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 198.51.100.1"}) {
			t.Errorf("dig +tcp: %s %v\n%s", r.status, r.answers, r.raw)
		}
		ips, err := res.LookupIP(ctx, "ip4", "a.svc.example.test")
		if err != nil || len(ips) != 1 || !ips[0].Equal(gw4.AsSlice()) {
			t.Errorf("Go resolver: %v %v", ips, err)
		}
	})
	t.Run("denied name", func(t *testing.T) {
		d.reset()
		before := counterValue(t, s.metrics.queryBy[queryLabels{vocab.VerdictDeny, vocab.ReasonNotInRegistry}])
		r := dig(t, addr, "evil.example.net", "A")
		if r.status != "NXDOMAIN" || len(r.answers) != 0 {
			t.Errorf("dig: %s %v", r.status, r.answers)
		}
		if !strings.HasPrefix(r.ede, "15 (Blocked)") || !strings.Contains(r.ede, textNotInRegistry) {
			t.Errorf("EDE line %q, want 15 (Blocked) with the reason\n%s", r.ede, r.raw)
		}
		_, err := res.LookupHost(ctx, "evil.example.net")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("Go resolver: %v, want not found", err)
		}
		got := d.all()
		if len(got) < 1 || got[0].Host != "evil.example.net" || got[0].Reason != vocab.ReasonNotInRegistry ||
			got[0].Verdict != vocab.VerdictDeny || got[0].QType != "A" || !got[0].Source.Addr().IsLoopback() {
			t.Errorf("decisions %+v", got)
		}
		after := counterValue(t, s.metrics.queryBy[queryLabels{vocab.VerdictDeny, vocab.ReasonNotInRegistry}])
		if after-before < 3 { // dig, Go's A and AAAA
			t.Errorf("egressd_dns_queries_total{deny,not_in_registry} grew by %v, want at least 3", after-before)
		}
	})
	t.Run("pass-through zone", func(t *testing.T) {
		r := dig(t, addr, "kube-dns.kube-system.svc.cluster.local", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 10.96.0.10"}) {
			t.Errorf("dig: %s %v\n%s", r.status, r.answers, r.raw)
		}
	})
	t.Run("STATIC addresses", func(t *testing.T) {
		r := dig(t, addr, "static.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 192.0.2.99"}) {
			t.Errorf("dig A: %s %v", r.status, r.answers)
		}
		r = dig(t, addr, "static.example.test", "TXT")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{`TXT "static txt"`}) {
			t.Errorf("dig TXT (forwarded): %s %v", r.status, r.answers)
		}
	})
	t.Run("VIP stable across SetAllowlist", func(t *testing.T) {
		first := dig(t, addr, "db.example.test", "A")
		if first.status != "NOERROR" || len(first.answers) != 1 {
			t.Fatalf("dig: %s %v", first.status, first.answers)
		}
		vip := netip.MustParseAddr(strings.TrimPrefix(first.answers[0], "A "))
		if !DefaultVIPRange.Contains(vip) {
			t.Fatalf("VIP %s outside %s", vip, DefaultVIPRange)
		}
		// Reload: the same list plus another TCP host.
		more, err := os.ReadFile("testdata/allowlist.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s.SetAllowlist(compileYAML(t, "more.yaml", string(more)+tcpEntries("queue.example.test")))
		again := dig(t, addr, "db.example.test", "A")
		if !cmp.Equal(again.answers, first.answers) {
			t.Errorf("after reload %v, before %v", again.answers, first.answers)
		}
		ips, err := res.LookupIP(ctx, "ip4", "db.example.test")
		if err != nil || len(ips) != 1 || ips[0].String() != vip.String() {
			t.Errorf("Go resolver: %v %v, want %s", ips, err, vip)
		}
	})
}

// TestRealForwardMode: real records through the guard, CNAME chains and
// the TCP fallback, with unbound upstream.
func TestRealForwardMode(t *testing.T) {
	_, s, d, addr := realSetup(t, Config{Mode: ModeForward})
	ctx := context.Background()
	res := goResolver(addr)

	t.Run("allowed exact and wildcard names", func(t *testing.T) {
		r := dig(t, addr, "www.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 192.0.2.10"}) {
			t.Errorf("dig: %s %v\n%s", r.status, r.answers, r.raw)
		}
		ips, err := res.LookupHost(ctx, "www.example.test")
		sort.Strings(ips)
		if err != nil || !cmp.Equal(ips, []string{"192.0.2.10", "2001:db8::10"}) {
			t.Errorf("Go resolver: %v %v", ips, err)
		}
		r = dig(t, addr, "a.svc.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 192.0.2.20"}) {
			t.Errorf("dig wildcard: %s %v", r.status, r.answers)
		}
	})
	t.Run("denied name", func(t *testing.T) {
		r := dig(t, addr, "evil.example.net", "A")
		if r.status != "NXDOMAIN" || !strings.HasPrefix(r.ede, "15 (Blocked)") {
			t.Errorf("dig: %s %q", r.status, r.ede)
		}
	})
	t.Run("rebinding answer blocked", func(t *testing.T) {
		for _, name := range []string{"rebind.example.test", "private.example.test", "metadata.example.test"} {
			d.reset()
			r := dig(t, addr, name, "A")
			if r.status != "NXDOMAIN" || len(r.answers) != 0 || !strings.Contains(r.ede, textBlockedAddr) {
				t.Errorf("%s: dig %s %v %q", name, r.status, r.answers, r.ede)
			}
			got := d.all()
			if len(got) != 1 || got[0].Reason != vocab.ReasonBlockedAddress || got[0].Verdict != vocab.VerdictDeny {
				t.Errorf("%s: decisions %+v", name, got)
			}
			if _, err := res.LookupIP(ctx, "ip4", name); err == nil {
				t.Errorf("%s: Go resolver got an address", name)
			}
		}
		r := dig(t, addr, "mixed.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 192.0.2.40"}) {
			t.Errorf("mixed: %s %v", r.status, r.answers)
		}
		r = dig(t, addr, "listed.example.test", "A")
		if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 10.0.0.6"}) {
			t.Errorf("listed endpoint: %s %v", r.status, r.answers)
		}
	})
	t.Run("CNAME chain to an unlisted name recorded", func(t *testing.T) {
		d.reset()
		r := dig(t, addr, "alias.example.test", "A")
		if r.status != "NOERROR" || len(r.answers) == 0 || r.answers[0] != "CNAME cdn.unlisted.test." {
			t.Errorf("dig: %s %v\n%s", r.status, r.answers, r.raw)
		}
		got := d.all()
		if len(got) != 1 || got[0].Reason != vocab.ReasonCNAMEToUnlisted || got[0].Verdict != vocab.VerdictAllow ||
			got[0].Detail != "alias.example.test -> cdn.unlisted.test" {
			t.Errorf("decisions %+v", got)
		}
	})
	t.Run("TCP fallback for large answers", func(t *testing.T) {
		tcpOK := s.metrics.upstream.WithLabelValues("tcp", "ok")
		before := counterValue(t, tcpOK)
		// 100 A records (~1.6 KB) exceed unbound's 1232-byte UDP answers:
		// the proxy gets TC over UDP and asks again over TCP.
		r := dig(t, addr, "big.example.test", "A", "+bufsize=4096", "+ignore")
		if r.status != "NOERROR" || len(r.answers) != 100 || r.hasFlag("tc") {
			t.Errorf("dig over UDP, 4096 bytes: %s, %d answers, flags %v", r.status, len(r.answers), r.flags)
		}
		if after := counterValue(t, tcpOK); after-before != 1 {
			t.Errorf("upstream TCP answers grew by %v, want 1", after-before)
		}
		// A client without EDNS gets TC over UDP and retries over TCP.
		r = dig(t, addr, "big.example.test", "A", "+noedns")
		if r.status != "NOERROR" || len(r.answers) != 100 || !strings.Contains(r.raw, "Truncated, retrying in TCP mode") {
			t.Errorf("dig +noedns: %s, %d answers\n%s", r.status, len(r.answers), r.raw)
		}
		ips, err := res.LookupIP(ctx, "ip4", "big.example.test")
		if err != nil || len(ips) != 100 {
			t.Errorf("Go resolver: %d addresses, %v", len(ips), err)
		}
	})
}

// TestRealUpstreamDown: failover past a dead upstream to unbound; SERVFAIL
// once unbound is gone too.
func TestRealUpstreamDown(t *testing.T) {
	requireTool(t, "dig")
	u := startUnbound(t, testZoneConf(), "")
	s, d := newTestServer(t, Config{
		Listen: "127.0.0.1:0", Mode: ModeForward, CacheSize: -1,
		Upstreams: []string{deadAddr(t), u.addr}, Timeout: 300 * time.Millisecond,
	})
	addr := startServer(t, s)
	r := dig(t, addr, "www.example.test", "A")
	if r.status != "NOERROR" || !cmp.Equal(r.answers, []string{"A 192.0.2.10"}) {
		t.Fatalf("failover: %s %v\n%s", r.status, r.answers, r.raw)
	}
	u.stop()
	d.reset()
	r = dig(t, addr, "www.example.test", "A")
	if r.status != "SERVFAIL" || len(r.answers) != 0 || !strings.HasPrefix(r.ede, "22 (No Reachable Authority)") {
		t.Errorf("all down: %s %v %q\n%s", r.status, r.answers, r.ede, r.raw)
	}
	if got := d.all(); len(got) != 1 || got[0].Reason != vocab.ReasonUpstreamError {
		t.Errorf("decisions %+v", got)
	}
	if _, err := goResolver(addr).LookupIP(context.Background(), "ip4", "www.example.test"); err == nil {
		t.Error("Go resolver got an answer with every upstream down")
	}
}
