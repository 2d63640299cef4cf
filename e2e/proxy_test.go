package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// TestExplicitProxy: the gateway as HTTPS_PROXY and HTTP_PROXY for curl.
// A CONNECT to a listed TLS host reaches it end to end; a CONNECT to an
// unlisted host, or to a listed host on a port no entry lists, is refused
// 403 with one decision naming the target and the proxy; an absolute-URI
// request is routed as on the HTTP port, a redirect to an unlisted host
// included.
func TestExplicitProxy(t *testing.T) {
	skipShort(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not found")
	}
	tlsPort, _ := upstreamTLS(t, "api.proxy.test")
	web := upstreamHTTP(t, "web")
	redirect := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.proxy.test/landing", http.StatusFound)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}()
	dir := t.TempDir()
	writeFile(t, dir, "api.yaml", staticEntry("api", "api.proxy.test", 443, "TLS", tlsPort))
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.proxy.test", 80, "HTTP", web))
	writeFile(t, dir, "moved.yaml", staticEntry("moved", "moved.proxy.test", 80, "HTTP", redirect))
	g := startGateway(t, dir)
	proxy := "http://" + g.Addr(3128)

	// run calls curl with args and env; it returns what curl printed
	// (body, then the -w line) and its error.
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "5", "-w", "\ncode=%{http_code} connect=%{http_connect}"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	eventually(t, 60*time.Second, "a CONNECT to the listed TLS host", func() error {
		out, err := run(nil, "-k", "--proxy", proxy, "https://api.proxy.test/")
		if err != nil || !strings.Contains(out, "hello over TLS from api.proxy.test") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	// The same through the environment, as a CI job would.
	if out, err := run([]string{"HTTPS_PROXY=" + proxy, "https_proxy=" + proxy}, "-k", "https://api.proxy.test/"); err != nil || !strings.Contains(out, "hello over TLS") {
		t.Errorf("HTTPS_PROXY: %v: %s", err, out)
	}
	g.waitDecision(t, "the CONNECT allowed", url.Values{"host": {"api.proxy.test"}, "verdict": {"allow"}}, func(d decision.Decision) error {
		if d.Via != "proxy" || d.Method != "CONNECT" || d.Port != 443 || d.ServiceEntry != "e2e/api" {
			return fmt.Errorf("via %q method %q port %d entry %q", d.Via, d.Method, d.Port, d.ServiceEntry)
		}
		return nil
	})

	// Refused: an unlisted host, and a listed host on another port.
	for _, target := range []string{"https://evil.proxy.test/", "https://api.proxy.test:8443/"} {
		out, err := run(nil, "-k", "--proxy", proxy, target)
		if err == nil || !strings.Contains(out, "connect=403") {
			t.Errorf("%s: want the CONNECT refused 403, got %v: %s", target, err, out)
		}
	}
	for host, port := range map[string]uint32{"evil.proxy.test": 443, "api.proxy.test": 8443} {
		g.waitDecision(t, "the CONNECT to "+host+" refused", url.Values{"host": {host}, "reason": {"not_in_registry"}}, func(d decision.Decision) error {
			if d.Via != "proxy" || d.Verdict != "deny" || d.Port != port || d.Status != 403 {
				return fmt.Errorf("via %q verdict %s port %d status %d", d.Via, d.Verdict, d.Port, d.Status)
			}
			return nil
		})
	}

	if !strings.Contains(g.Logs(), `"via":"proxy"`) {
		t.Error("no decision log line says via proxy")
	}
	// Absolute URIs: as on the HTTP port.
	if out, err := run(nil, "--proxy", proxy, "http://web.proxy.test/"); err != nil || !strings.Contains(out, "hello from web") {
		t.Errorf("absolute URI to a listed host: %v: %s", err, out)
	}
	if out, _ := run([]string{"http_proxy=" + proxy}, "-i", "http://unlisted.proxy.test/"); !strings.Contains(out, "code=403") || !strings.Contains(out, "x-egressd-denied: not_in_registry") {
		t.Errorf("absolute URI to an unlisted host: %s", out)
	}
	g.waitDecision(t, "the absolute URI refused", url.Values{"host": {"unlisted.proxy.test"}}, func(d decision.Decision) error {
		if d.Via != "proxy" || d.Reason != "not_in_registry" || d.Method != "GET" {
			return fmt.Errorf("via %q reason %s method %q", d.Via, d.Reason, d.Method)
		}
		return nil
	})
	// A listed host redirects to an unlisted one: curl follows, the
	// second hop is refused, and the chain is recorded.
	if out, _ := run(nil, "-L", "--proxy", proxy, "http://moved.proxy.test/start"); !strings.Contains(out, "code=403") {
		t.Errorf("redirect to an unlisted host: %s", out)
	}
	eventually(t, 10*time.Second, "the redirect chain recorded", func() error {
		var out struct {
			Chains []decision.ChainView `json:"chains"`
		}
		if err := g.tryAPIGet("/api/v1/chains", &out); err != nil {
			return err
		}
		for _, c := range out.Chains {
			if len(c.Hops) >= 2 && c.Hops[0].Host == "moved.proxy.test" && c.Hops[1].Host == "elsewhere.proxy.test" {
				return nil
			}
		}
		return fmt.Errorf("chains %+v", out.Chains)
	})
}

// TestProxyConnectAddressGuard: a CONNECT to a listed host whose name
// resolves to an internal address (a loopback stand-in) is refused by the
// address guard, as the transparent path is: the stand-in counts no
// connection, and the refusal is a blocked_address decision via the proxy.
func TestProxyConnectAddressGuard(t *testing.T) {
	skipShort(t)
	s := startStandIn(t)
	resolver := dnsServerTo(t, "ssrf.test.", net.ParseIP(s.ip))
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", ssrfEntries(s))
	g := startGateway(t, dir, "--gateway-dns", resolver)
	eventually(t, 30*time.Second, "gateway serving", func() error {
		code, _, err := g.getHost("listed.ssrf.test", s.httpPort)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	proxyURL, _ := url.Parse("http://" + g.Addr(3128))
	target := fmt.Sprintf("api.ssrf.test:%d", s.tlsPort)
	for range 3 {
		conn, err := net.DialTimeout("tcp", proxyURL.Host, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"})
		if err == nil && resp.StatusCode == 200 {
			// Envoy answers 200 once it connected upstream: it must not.
			t.Errorf("CONNECT %s: %s", target, resp.Status)
		}
		conn.Close()
	}
	g.waitDecision(t, "the CONNECT refused by the guard", url.Values{"host": {"api.ssrf.test"}, "reason": {"blocked_address"}}, func(d decision.Decision) error {
		if d.Via != "proxy" || d.Verdict != "deny" || d.ServiceEntry != "e2e/api" || !strings.Contains(d.Detail, s.ip+" (loopback)") {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})
	if n := s.tlsConn.Load(); n != 0 {
		t.Errorf("the internal TLS service got %d connections through the proxy", n)
	}
}

// TestProxyIdentity: with --proxy-tokens and --proxy-require-identity, a
// client without Proxy-Authorization is answered 407 (one decision), one
// with its identity and secret (Basic, or Bearer) gets through, and its
// decisions name it; the credentials never reach the upstream.
func TestProxyIdentity(t *testing.T) {
	skipShort(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not found")
	}
	tlsPort, _ := upstreamTLS(t, "api.ident.test")
	seen := make(chan string, 16)
	webPort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case seen <- r.Header.Get("Proxy-Authorization"):
			default:
			}
			fmt.Fprintln(w, "hello from web")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}()
	dir := t.TempDir()
	writeFile(t, dir, "api.yaml", staticEntry("api", "api.ident.test", 443, "TLS", tlsPort))
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.ident.test", 80, "HTTP", webPort))
	tokens := t.TempDir() + "/tokens"
	if err := os.WriteFile(tokens, []byte("# clients\nci-runner s3cret\nbatch b4tch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, dir, "--proxy-tokens", tokens, "--proxy-require-identity")
	proxy := "http://" + g.Addr(3128)
	run := func(args ...string) string {
		out, _ := exec.Command(curl, append([]string{"-sS", "-k", "--max-time", "5", "-w", "\ncode=%{http_code} connect=%{http_connect}", "--proxy", proxy}, args...)...).CombinedOutput()
		return string(out)
	}
	eventually(t, 60*time.Second, "the proxy asks for an identity", func() error {
		if out := run("https://api.ident.test/"); !strings.Contains(out, "connect=407") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	g.waitDecision(t, "the refusal for want of an identity", url.Values{"host": {"api.ident.test"}, "reason": {"policy_denied"}}, func(d decision.Decision) error {
		if d.Via != "proxy" || d.Status != 407 || !strings.Contains(d.Detail, "requires an identity") {
			return fmt.Errorf("via %q status %d detail %q", d.Via, d.Status, d.Detail)
		}
		return nil
	})
	if out := run("--proxy-user", "ci-runner:wrong", "https://api.ident.test/"); !strings.Contains(out, "connect=407") {
		t.Errorf("a wrong secret: %s", out)
	}
	if out := run("--proxy-user", "ci-runner:s3cret", "https://api.ident.test/"); !strings.Contains(out, "hello over TLS") {
		t.Errorf("Basic identity: %s", out)
	}
	g.waitDecision(t, "the CONNECT names its client", url.Values{"host": {"api.ident.test"}, "verdict": {"allow"}}, func(d decision.Decision) error {
		if d.Identity != "ci-runner" || d.Via != "proxy" {
			return fmt.Errorf("identity %q via %q", d.Identity, d.Via)
		}
		return nil
	})
	if out := run("--proxy-header", "Proxy-Authorization: Bearer b4tch", "http://web.ident.test/"); !strings.Contains(out, "hello from web") {
		t.Errorf("Bearer identity: %s", out)
	}
	select {
	case h := <-seen:
		if h != "" {
			t.Errorf("the upstream got Proxy-Authorization %q", h)
		}
	case <-time.After(5 * time.Second):
		t.Error("the upstream saw no request")
	}
	g.waitDecision(t, "the absolute URI names its client", url.Values{"host": {"web.ident.test"}}, func(d decision.Decision) error {
		if d.Identity != "batch" {
			return fmt.Errorf("identity %q", d.Identity)
		}
		return nil
	})
}

// connectRecorder is a small upstream CONNECT proxy: it records each
// CONNECT line and Proxy-Authorization, answers 200 and pipes the tunnel
// to target (whatever host was asked for).
type connectRecorder struct {
	addr string
	seen chan [2]string // CONNECT target, Proxy-Authorization
}

func startConnectRecorder(t *testing.T, target string) *connectRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &connectRecorder{addr: ln.Addr().String(), seen: make(chan [2]string, 32)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				select {
				case r.seen <- [2]string{req.Host, req.Header.Get("Proxy-Authorization")}:
				default:
				}
				up, err := net.DialTimeout("tcp", target, 3*time.Second)
				if err != nil {
					fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return r
}

// TestUpstreamProxyChaining: with --upstream-proxy, a listed TLS host is
// reached through the upstream CONNECT proxy, with its credentials, both
// on the transparent TLS port and by CONNECT to the explicit proxy; an
// unlisted host never reaches the upstream proxy.
func TestUpstreamProxyChaining(t *testing.T) {
	skipShort(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not found")
	}
	tlsPort, _ := upstreamTLS(t, "api.chain.test")
	corp := startConnectRecorder(t, fmt.Sprintf("127.0.0.1:%d", tlsPort))
	dir := t.TempDir()
	// The entry's own endpoint is nowhere: only the chain reaches the host.
	writeFile(t, dir, "api.yaml", staticEntry("api", "api.chain.test", 443, "TLS", 1))
	creds := t.TempDir() + "/corp"
	if err := os.WriteFile(creds, []byte("corp:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, dir, "--upstream-proxy", corp.addr, "--upstream-proxy-credentials", creds)
	wantBasic := "Basic Y29ycDpwdw==" // corp:pw
	expectConnect := func(what string) {
		t.Helper()
		select {
		case s := <-corp.seen:
			if s[0] != "api.chain.test:443" || s[1] != wantBasic {
				t.Errorf("%s: the upstream proxy got CONNECT %s with Proxy-Authorization %q", what, s[0], s[1])
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no CONNECT reached the upstream proxy", what)
		}
	}
	eventually(t, 60*time.Second, "the transparent TLS port through the chain", func() error {
		out, err := exec.Command(curl, "-sS", "-k", "--max-time", "5", "--connect-to", "api.chain.test:443:"+g.Addr(443), "https://api.chain.test/").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello over TLS from api.chain.test") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	expectConnect("transparent")
	for len(corp.seen) > 0 { // earlier tries while the gateway started
		<-corp.seen
	}
	out, err := exec.Command(curl, "-sS", "-k", "--max-time", "5", "--proxy", "http://"+g.Addr(3128), "https://api.chain.test/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello over TLS from api.chain.test") {
		t.Errorf("CONNECT through the explicit proxy and the chain: %v: %s", err, out)
	}
	expectConnect("explicit proxy")
	g.waitDecision(t, "the chained connection names the upstream proxy", url.Values{"host": {"api.chain.test"}, "verdict": {"allow"}}, func(d decision.Decision) error {
		if d.Upstream != corp.addr {
			return fmt.Errorf("upstream %q, want the upstream proxy %s", d.Upstream, corp.addr)
		}
		return nil
	})
	// Unlisted: refused at the gateway, never sent on.
	if err := g.tlsTo("evil.chain.test", 443); err == nil {
		t.Error("TLS to an unlisted host completed")
	}
	select {
	case s := <-corp.seen:
		t.Errorf("an unlisted host reached the upstream proxy: CONNECT %s", s[0])
	case <-time.After(time.Second):
	}
}
