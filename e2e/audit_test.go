package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
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

	"github.com/miekg/dns"

	"github.com/egressd/egressd/egress/decision"
)

// realPortUpstreams starts, on a loopback IP of their own, an HTTP server
// on port 80 and an HTTPS server on port 443 for names: where a gateway
// that resolves a host by DNS connects. The test runs as root (make test
// in CI); without root it is skipped.
func realPortUpstreams(t *testing.T, names ...string) (ip string, cert *x509.Certificate) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind ports 80 and 443")
	}
	ip = gatewayIP()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "80"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the real upstream (host %s)\n", r.Host)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, cert = upstreamTLSOn(t, net.JoinHostPort(ip, "443"), names...)
	return ip, cert
}

// getVia sends GET url with every connection steered to the gateway's
// port-80 listener.
func (g *Gateway) getVia(rawURL string) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(80))
		},
	}}
	resp, err := client.Get(rawURL)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestAuditMode: under --outbound AUDIT unlisted hosts are reachable (HTTP
// by Host, TLS by SNI, DNS forwarded) and every such request, connection
// and query is recorded as audit-deny; the same traffic under
// REGISTRY_ONLY is denied.
func TestAuditMode(t *testing.T) {
	skipShort(t)
	ip, cert := realPortUpstreams(t, "shop.audit.test")
	resolver := dnsServerTo(t, "audit.test.", net.ParseIP(ip))
	dir := t.TempDir()
	writeFile(t, dir, "listed.yaml", staticEntry("listed", "listed.audit.test", 80, "HTTP", upstreamHTTP(t, "listed")))

	audit := startGateway(t, dir, append(allowUpstreams(ip), "--outbound", "AUDIT", "--gateway-dns", resolver, "--dns-upstream", resolver)...)
	strict := startGateway(t, dir, append(allowUpstreams(ip), "--gateway-dns", resolver, "--dns-upstream", resolver)...)
	eventually(t, 30*time.Second, "audit gateway serving", audit.wantStatus("listed.audit.test", 200))
	eventually(t, 30*time.Second, "strict gateway serving", strict.wantStatus("listed.audit.test", 200))

	// HTTP by Host.
	code, body, err := audit.getVia("http://shop.audit.test/cart")
	if err != nil || code != 200 || !strings.Contains(body, "real upstream") {
		t.Errorf("AUDIT: unlisted HTTP host: %d %q %v, want 200 from the upstream", code, body, err)
	}
	if code, _, err := strict.getVia("http://shop.audit.test/cart"); err != nil || code != 403 {
		t.Errorf("REGISTRY_ONLY: unlisted HTTP host: %d %v, want 403", code, err)
	}

	// TLS by SNI.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	raw, err := net.DialTimeout("tcp", audit.Addr(443), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tlsClient(raw, "shop.audit.test", roots); err != nil {
		t.Errorf("AUDIT: unlisted SNI: %v", err)
	} else {
		conn.Close()
	}
	raw, err = net.DialTimeout("tcp", strict.Addr(443), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tlsClient(raw, "shop.audit.test", roots); err == nil {
		conn.Close()
		t.Error("REGISTRY_ONLY: unlisted SNI got through")
	}

	// DNS.
	q := new(dns.Msg)
	q.SetQuestion("shop.audit.test.", dns.TypeA)
	if r, err := dns.Exchange(q, audit.DNSAddr); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("AUDIT: unlisted name: %v %v, want the upstream's answer", r, err)
	}
	if r, err := dns.Exchange(q, strict.DNSAddr); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("REGISTRY_ONLY: unlisted name: %v %v, want NXDOMAIN", r, err)
	}

	// Recorded: audit-deny on every layer under AUDIT, deny under REGISTRY_ONLY.
	for _, layer := range []string{"http", "tls", "dns"} {
		eventually(t, 10*time.Second, "AUDIT "+layer+" decision", func() error {
			ds := audit.decisions(t, url.Values{"layer": {layer}, "host": {"shop.audit.test"}})
			if len(ds) != 1 || ds[0].Verdict != "audit-deny" || ds[0].Reason != "not_in_registry" {
				return fmt.Errorf("%+v", ds)
			}
			return nil
		})
		eventually(t, 10*time.Second, "REGISTRY_ONLY "+layer+" decision", func() error {
			ds := strict.decisions(t, url.Values{"layer": {layer}, "host": {"shop.audit.test"}})
			if len(ds) != 1 || ds[0].Verdict != "deny" {
				return fmt.Errorf("%+v", ds)
			}
			return nil
		})
	}
	if ds := audit.decisions(t, url.Values{"host": {"listed.audit.test"}, "verdict": {"audit-deny"}}); len(ds) != 0 {
		t.Errorf("listed host recorded as audit-deny: %+v", ds)
	}
	if !strings.Contains(audit.Logs(), `"msg":"egress audit-denied"`) {
		t.Error("no audit-denied log line")
	}
}

// TestSuggestFixesADenial: egressctl suggest turns a recorded denial into a
// ServiceEntry; written to the config folder, it makes the denied request
// succeed.
func TestSuggestFixesADenial(t *testing.T) {
	skipShort(t)
	ip, _ := realPortUpstreams(t, "api.partner.test")
	resolver := dnsServerTo(t, "partner.test.", net.ParseIP(ip))
	dir := t.TempDir()
	g := startGateway(t, dir, append(allowUpstreams(ip), "--gateway-dns", resolver)...)
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("api.partner.test", 403))
	eventually(t, 10*time.Second, "denial recorded", func() error {
		if len(g.decisions(t, url.Values{"host": {"api.partner.test"}, "verdict": {"deny"}})) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})

	// egressctl decisions shows the denial.
	out, err := exec.Command(egressctlBin, "decisions", "--admin", "http://"+g.EgressdAdmin, "--host", "api.partner.test", "-o", "json").Output()
	if err != nil {
		t.Fatalf("egressctl decisions: %v\n%s", err, out)
	}
	var first decision.Decision
	if err := json.Unmarshal([]byte(strings.SplitN(string(out), "\n", 2)[0]), &first); err != nil || first.Host != "api.partner.test" || first.Verdict != "deny" {
		t.Errorf("egressctl decisions -o json: %v\n%s", err, out)
	}

	cmd := exec.Command(egressctlBin, "suggest", "--admin", "http://"+g.EgressdAdmin, "--namespace", "e2e")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("egressctl suggest: %v\n%s", err, out)
	}
	yaml := string(out)
	t.Logf("suggested:\n%s", yaml)
	if !strings.Contains(yaml, "api.partner.test") || !strings.Contains(yaml, "kind: ServiceEntry") {
		t.Fatalf("no ServiceEntry for api.partner.test in:\n%s", yaml)
	}
	writeFile(t, dir, "suggested.yaml", yaml)
	eventually(t, 10*time.Second, "suggested entry applied", g.wantStatus("api.partner.test", 200))
	if out, err := exec.Command(egressdBin, "validate", "--config", dir).CombinedOutput(); err != nil {
		t.Errorf("egressd validate on the suggestion: %v\n%s", err, out)
	}
}
