package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// standIn is a loopback service that counts every connection made to it:
// an internal service (a pod, the API server, the metadata address) the
// gateway must never reach unless told to.
type standIn struct {
	ip                 string
	httpPort, tlsPort  int
	httpConns, tlsConn atomic.Int64
}

// startStandIn serves HTTP and accepts TCP (as a TLS server would) on a
// loopback address of its own, on ports below 10000 (the service ports of
// entries, which the gateway serves 10000 higher).
func startStandIn(t *testing.T) *standIn {
	t.Helper()
	s := &standIn{ip: gatewayIP()}
	httpLn := lowPortOn(t, s.ip)
	s.httpPort = httpLn.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "internal service") }),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.httpConns.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(httpLn) }()
	t.Cleanup(func() { _ = srv.Close() })
	tlsLn := lowPortOn(t, s.ip)
	s.tlsPort = tlsLn.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			s.tlsConn.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { tlsLn.Close() })
	return s
}

// lowPortOn listens on ip at a free port below 10000.
func lowPortOn(t *testing.T, ip string) net.Listener {
	t.Helper()
	for p := 2000 + time.Now().Nanosecond()%7000; p < 9999; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, p)); err == nil {
			return ln
		}
	}
	t.Fatal("no free port below 10000")
	return nil
}

// ssrfEntries are a wildcard resolved by the gateway (resolution NONE),
// DNS entries by host and by endpoint name, and a DNS entry that lists the
// stand-in's address, all under ssrf.test, which the tests' resolver
// answers with the stand-in's address.
func ssrfEntries(s *standIn) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: e2e}
spec:
  hosts: ["*.wild.ssrf.test"]
  ports:
  - {number: %[1]d, name: http, protocol: HTTP}
  - {number: %[2]d, name: tls, protocol: TLS}
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: e2e}
spec:
  hosts: [internal.ssrf.test]
  ports:
  - {number: %[1]d, name: http, protocol: HTTP}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: e2e}
spec:
  hosts: [api.ssrf.test]
  ports:
  - {number: %[2]d, name: tls, protocol: TLS}
  resolution: DNS
  endpoints:
  - address: backend.ssrf.test
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: listed, namespace: e2e}
spec:
  hosts: [listed.ssrf.test]
  addresses: [%[3]s]
  ports:
  - {number: %[1]d, name: http, protocol: HTTP}
  resolution: DNS
`, s.httpPort, s.tlsPort, s.ip)
}

// getHost sends GET http://host:port/ to the gateway's listener of port.
func (g *Gateway) getHost(host string, port int) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(port))
		},
	}}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d/", host, port))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// tlsTo opens TLS with sni through the gateway's listener of port; it
// reports whether the handshake reached a server.
func (g *Gateway) tlsTo(sni string, port int) error {
	raw, err := net.DialTimeout("tcp", g.Addr(port), 3*time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(3 * time.Second))
	return tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
}

// countDecisions waits until exactly want decisions match params (and
// stays there for a moment), failing on more.
func (g *Gateway) countDecisions(t *testing.T, what string, params url.Values, want int) []decision.Decision {
	t.Helper()
	var got []decision.Decision
	eventually(t, 10*time.Second, what, func() error {
		got = g.decisions(t, params)
		if len(got) < want {
			return fmt.Errorf("%d decisions, want %d", len(got), want)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // the tracker holds decisions for a second
	if got = g.decisions(t, params); len(got) != want {
		t.Errorf("%s: %d decisions, want exactly %d: %+v", what, len(got), want, got)
	}
	return got
}

// TestGatewayDoesNotConnectToInternalAddresses: a wildcard resolved by the
// gateway, a DNS entry and a DNS entry's endpoint name that resolve to an
// internal (loopback) address are never connected: the internal service
// counts no connection, and each attempt is one blocked_address decision
// that names the address and the entry. An entry that lists the address
// connects, and so does everything once the operator allows the range.
func TestGatewayDoesNotConnectToInternalAddresses(t *testing.T) {
	skipShort(t)
	s := startStandIn(t)
	resolver := dnsServerTo(t, "ssrf.test.", net.ParseIP(s.ip))
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", ssrfEntries(s))
	g := startGateway(t, dir, "--gateway-dns", resolver)
	eventually(t, 30*time.Second, "gateway serving", func() error {
		code, body, err := g.getHost("listed.ssrf.test", s.httpPort)
		if err != nil || code != 200 || !strings.Contains(body, "internal service") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	listedConns := s.httpConns.Load()
	if listedConns == 0 {
		t.Fatal("the entry that lists the address did not connect")
	}

	const attempts = 3
	for i := 0; i < attempts; i++ {
		for _, host := range []string{"x.wild.ssrf.test", "internal.ssrf.test"} {
			code, body, err := g.getHost(host, s.httpPort)
			if err != nil || code == 200 || strings.Contains(body, "internal service") {
				t.Errorf("%s: %d %q %v: reached the internal service", host, code, body, err)
			}
		}
		for _, sni := range []string{"y.wild.ssrf.test", "api.ssrf.test"} {
			if err := g.tlsTo(sni, s.tlsPort); err == nil {
				t.Errorf("TLS %s: handshake completed", sni)
			}
		}
	}
	for host, entry := range map[string]string{
		"x.wild.ssrf.test":   "e2e/wild",
		"internal.ssrf.test": "e2e/internal",
		"y.wild.ssrf.test":   "e2e/wild",
		"api.ssrf.test":      "e2e/api",
	} {
		ds := g.countDecisions(t, host+" refused", url.Values{"host": {host}}, attempts)
		for _, d := range ds {
			if d.Verdict != vocab.VerdictDeny || d.Reason != vocab.ReasonBlockedAddress || d.ServiceEntry != entry ||
				!strings.Contains(d.Detail, s.ip+" (loopback)") {
				t.Errorf("%s: decision %+v, want deny / blocked_address by %s naming %s", host, d, entry, s.ip)
			}
		}
	}
	if n := s.httpConns.Load() - listedConns; n != 0 {
		t.Errorf("the internal HTTP service got %d connections through the gateway", n)
	}
	if n := s.tlsConn.Load(); n != 0 {
		t.Errorf("the internal TLS service got %d connections through the gateway", n)
	}
	if !strings.Contains(g.Logs(), `"reason":"blocked_address"`) {
		t.Error("no blocked_address log line")
	}
	if v := g.metric(t, `egressd_decisions_total{layer="http",reason="blocked_address",verdict="deny"}`); v != 2*attempts {
		t.Errorf("egressd_decisions_total for http blocked_address = %v, want %d", v, 2*attempts)
	}

	// The operator allows the range: the same entries connect.
	allowed := startGateway(t, dir, append(allowUpstreams(s.ip), "--gateway-dns", resolver)...)
	eventually(t, 30*time.Second, "allowed range connects", func() error {
		for _, host := range []string{"x.wild.ssrf.test", "internal.ssrf.test"} {
			if code, body, err := allowed.getHost(host, s.httpPort); err != nil || code != 200 || !strings.Contains(body, "internal service") {
				return fmt.Errorf("%s: %d %q %v", host, code, body, err)
			}
		}
		return nil
	})
	before := s.tlsConn.Load()
	_ = allowed.tlsTo("api.ssrf.test", s.tlsPort)
	if s.tlsConn.Load() == before {
		t.Error("with the range allowed, TLS by endpoint name did not connect")
	}
}

// TestNoForwardingLoops: under AUDIT and ALLOW_ANY, a request whose Host
// is the gateway itself, or a name that resolves to it, and a TLS
// handshake whose SNI is the gateway's address are refused at once and
// recorded as forwarding_loop, a few decisions and no more; Envoy does
// not crash. As root the listeners take the service ports themselves
// (offset 0), so that a loop would really reach the same listener.
func TestNoForwardingLoops(t *testing.T) {
	skipShort(t)
	offset := "10000"
	if os.Geteuid() == 0 {
		offset = "0"
	}
	for _, mode := range []string{"AUDIT", "ALLOW_ANY"} {
		t.Run(mode, func(t *testing.T) {
			listed := upstreamHTTP(t, "listed")
			dir := t.TempDir()
			writeFile(t, dir, "listed.yaml", staticEntry("listed", "listed.loop.test", 80, "HTTP", listed))
			ip := gatewayIP()
			resolver := dnsServerTo(t, "loop.test.", net.ParseIP(ip))
			g := startGatewayOn(t, ip, dir, "--outbound", mode, "--gateway-dns", resolver, "--port-offset", offset)
			eventually(t, 30*time.Second, "gateway serving", g.wantStatus("listed.loop.test", 200))
			pid := g.EnvoyPID()
			start := time.Now()

			self := net.JoinHostPort(g.IP, fmt.Sprint(80+g.PortOffset))
			for _, host := range []string{self, "self.loop.test:" + fmt.Sprint(80+g.PortOffset)} {
				code, body, err := g.httpGet(host)
				if err != nil || code == 200 {
					t.Errorf("Host %s: %d %q %v, want a refusal", host, code, body, err)
				}
			}
			if answered, err := g.rawHello(g.IP, 443); answered || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("TLS with the gateway's address as SNI was not closed at once: answered %v, %v", answered, err)
			}
			// Each refusal is one decision; a loop would make thousands.
			time.Sleep(3 * time.Second)
			var all []decision.Decision
			for _, v := range []string{"deny", "audit-deny", "allow"} {
				for _, d := range g.decisions(t, url.Values{"verdict": {v}, "since": {start.Format(time.RFC3339Nano)}, "limit": {"1000"}}) {
					if d.Host != "listed.loop.test" {
						all = append(all, d)
					}
				}
			}
			if len(all) < 3 || len(all) > 6 {
				t.Errorf("%d decisions for 3 refused attempts: %+v", len(all), all)
			}
			loops := 0
			for _, d := range all {
				if d.Reason == vocab.ReasonForwardingLoop && d.Verdict == vocab.VerdictDeny {
					loops++
				}
			}
			if loops != 3 {
				t.Errorf("%d forwarding_loop denials, want 3: %+v", loops, all)
			}
			if got := g.EnvoyPID(); got != pid {
				t.Errorf("Envoy restarted: pid %d, then %d", pid, got)
			}
			if code, _, err := g.httpGet("listed.loop.test"); err != nil || code != 200 {
				t.Errorf("listed host after the loops: %d %v", code, err)
			}
		})
	}
}

// TestFloodShedsLoad: a flood of connections beyond the gateway's bound,
// and of requests that loop back to the gateway, makes Envoy refuse and
// shed, never crash: afterwards the same Envoy (same pid) answers a listed
// host. Bounded: 1,500 connections and 2,000 requests, loopback only.
func TestFloodShedsLoad(t *testing.T) {
	skipShort(t)
	listed := upstreamHTTP(t, "listed")
	dir := t.TempDir()
	writeFile(t, dir, "listed.yaml", staticEntry("listed", "listed.flood.test", 80, "HTTP", listed))
	g := startGateway(t, dir, "--outbound", "ALLOW_ANY", "--envoy-max-connections", "300", "--envoy-max-heap", "256Mi")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("listed.flood.test", 200))
	pid := g.EnvoyPID()

	// Hold 1,500 connections open (five times the bound).
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for range 1500 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", g.Addr(80), 2*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Requests that would loop, from 50 workers, while the connections
	// are held.
	loop := net.JoinHostPort(g.IP, fmt.Sprint(80+g.PortOffset))
	var refused, other atomic.Int64
	deadline := time.Now().Add(20 * time.Second)
	jobs := make(chan int)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if time.Now().After(deadline) {
					continue
				}
				code, _, err := g.httpGet(loop)
				switch {
				case err != nil || code == 403 || code == 503:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	for i := range 2000 {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("held %d connections; %d looping requests refused or shed, %d other", len(conns), refused.Load(), other.Load())
	if other.Load() != 0 {
		t.Errorf("%d looping requests were answered", other.Load())
	}
	overflow := envoyStat(t, g, "downstream_global_cx_overflow")
	if overflow == 0 {
		t.Error("Envoy never refused a connection past its bound")
	}
	for _, c := range conns {
		c.Close()
	}
	if got := g.EnvoyPID(); got != pid {
		t.Fatalf("Envoy restarted under the flood: pid %d, then %d", pid, got)
	}
	eventually(t, 15*time.Second, "listed host answers after the flood", g.wantStatus("listed.flood.test", 200))
}

// envoyStat sums a stat over Envoy's listeners (admin /stats).
func envoyStat(t *testing.T, g *Gateway, suffix string) int {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr + "/stats?filter=" + url.QueryEscape(suffix))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(line, ": "); ok && strings.HasSuffix(name, suffix) {
			var n int
			fmt.Sscan(v, &n)
			total += n
		}
	}
	return total
}

// clientHello is a minimal TLS 1.2 ClientHello whose server_name
// extension is sni, whatever it is: Go's TLS client never sends an
// address as SNI, an attacker's does.
func clientHello(sni string) []byte {
	name := []byte(sni)
	// server_name extension: list of one host_name entry.
	entry := append([]byte{0}, byte(len(name)>>8), byte(len(name)))
	entry = append(entry, name...)
	list := append([]byte{byte(len(entry) >> 8), byte(len(entry))}, entry...)
	ext := append([]byte{0, 0, byte(len(list) >> 8), byte(len(list))}, list...)
	body := []byte{3, 3}                     // client_version TLS 1.2
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 4, 0xc0, 0x2f, 0x13, 0x01)
	body = append(body, 1, 0) // compression: null
	body = append(body, byte(len(ext)>>8), byte(len(ext)))
	body = append(body, ext...)
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// rawHello sends clientHello(sni) to the gateway's listener of port and
// reports whether anything answered before the gateway closed.
func (g *Gateway) rawHello(sni string, port int) (answered bool, err error) {
	c, err := net.DialTimeout("tcp", g.Addr(port), 3*time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(clientHello(sni)); err != nil {
		return false, err
	}
	n, err := c.Read(make([]byte, 1))
	return n > 0, err
}
