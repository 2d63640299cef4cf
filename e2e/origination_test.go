package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// tlsUpstream serves HTTPS with pair; with clients set it requires a client
// certificate signed by them and names the client's CN in every reply. It
// closes the connection after each reply, so every request is a new
// handshake (what the rotation test needs to see a new certificate).
func tlsUpstream(t *testing.T, pair tls.Certificate, clients *x509.CertPool) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	if clients != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clients
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "https://elsewhere.unlisted.test/landing", http.StatusFound)
			return
		}
		client := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "tls upstream %s, client %s\n", r.TLS.ServerName, client)
	}), TLSConfig: cfg}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// writeCredential writes a Kubernetes-style credential folder: the files
// live in a timestamped folder that ..data points to, and tls.crt,
// tls.key and ca.crt are links through ..data, so an update is one atomic
// symlink swap, as the kubelet does it.
func writeCredential(t *testing.T, certDir, name string, cert, key, ca []byte) {
	t.Helper()
	dir := filepath.Join(certDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	version := fmt.Sprintf("..%d", time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(dir, version), 0o700); err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": ca} {
		if err := os.WriteFile(filepath.Join(dir, version, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, file)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", file), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func originationEntry(name, host string, upstreamPort int) string {
	return staticEntry(name, host, 80, "HTTP", upstreamPort)
}

func destinationRule(name, host, tlsYAML string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: e2e}
spec:
  host: %s
  trafficPolicy:
    tls:
%s`, name, host, tlsYAML)
}

// TestTLSOrigination: applications send plain HTTP; the gateway opens TLS
// (SIMPLE) or mutual TLS (MUTUAL) to the upstream as DestinationRules say,
// verifying the upstream against the CA and its names; every failure is a
// recorded decision; a client certificate rotated under load reaches the
// upstream within 2 s without a failed request.
func TestTLSOrigination(t *testing.T) {
	skipShort(t)
	ca := newTestCA(t, "partner test CA")
	other := newTestCA(t, "someone else's CA")
	_, _, simplePair := ca.issue("api.simple.test", false, "api.simple.test")
	_, _, untrustedPair := other.issue("api.untrusted.test", false, "api.untrusted.test")
	_, _, wrongNamePair := ca.issue("elsewhere.test", false, "elsewhere.test")
	// The name in the subject CN only, as the certificates of Istio's
	// mutual TLS origination task.
	_, _, cnOnlyPair := ca.issue("api.cnonly.test", false)
	_, _, mutualPair := ca.issue("api.mutual.test", false, "api.mutual.test", "api.nocert.test")
	clientCert, clientKey, _ := ca.issue("egress-client-1", true)

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	writeCredential(t, certDir, "partner", clientCert, clientKey, ca.pem)

	simple := tlsUpstream(t, simplePair, nil)
	untrusted := tlsUpstream(t, untrustedPair, nil)
	wrongName := tlsUpstream(t, wrongNamePair, nil)
	cnOnly := tlsUpstream(t, cnOnlyPair, nil)
	mutual := tlsUpstream(t, mutualPair, ca.pool())

	simpleTLS := fmt.Sprintf("      mode: SIMPLE\n      caCertificates: %s\n", caFile)
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", strings.Join([]string{
		originationEntry("simple", "api.simple.test", simple),
		originationEntry("untrusted", "api.untrusted.test", untrusted),
		originationEntry("wrong-name", "api.wrongname.test", wrongName),
		originationEntry("cn-only", "api.cnonly.test", cnOnly),
		originationEntry("mutual", "api.mutual.test", mutual),
		originationEntry("nocert", "api.nocert.test", mutual),
		destinationRule("simple", "api.simple.test", simpleTLS),
		destinationRule("untrusted", "api.untrusted.test", simpleTLS),
		destinationRule("wrong-name", "api.wrongname.test", simpleTLS),
		destinationRule("cn-only", "api.cnonly.test", simpleTLS),
		destinationRule("mutual", "api.mutual.test", "      mode: MUTUAL\n      credentialName: partner\n"),
		destinationRule("nocert", "api.nocert.test", simpleTLS),
	}, "---\n"))
	g := startGateway(t, dir, "--cert-dir", certDir, "--no-envoy-access-log")

	eventually(t, 30*time.Second, "SIMPLE origination", func() error {
		code, body, err := g.httpGet("api.simple.test")
		if err != nil || code != 200 || !strings.Contains(body, "tls upstream api.simple.test, client none") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	// Originated traffic is HTTP to the gateway: a redirect inside the
	// upstream's TLS is seen, and one to an unlisted host is reported.
	redirectClient := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(80))
		}}}
	if resp, err := redirectClient.Get("http://api.simple.test/redirect"); err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("redirect through origination: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	g.waitDecision(t, "redirect to an unlisted host over originated TLS", url.Values{"reason": {"redirect_to_unlisted_host"}}, func(d decision.Decision) error {
		if d.Host != "elsewhere.unlisted.test" || d.Chain == nil || len(d.Chain.Hops) != 2 || d.Chain.Hops[0].Host != "api.simple.test" {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})

	code, body, err := g.httpGet("api.mutual.test")
	if err != nil || code != 200 || !strings.Contains(body, "client egress-client-1") {
		t.Errorf("MUTUAL origination: %d %q %v", code, body, err)
	}

	// Failures: refused, and each recorded with the upstream's reason.
	for host, detail := range map[string]string{
		"api.untrusted.test": "CERTIFICATE_VERIFY_FAILED",
		"api.wrongname.test": "carries none of the names the gateway verifies",
		"api.cnonly.test":    "its name is only in the subject CN, which egressd does not accept",
		"api.nocert.test":    "",
	} {
		if code, body, err := g.httpGet(host); err != nil || code != 503 {
			t.Errorf("%s: %d %q %v, want 503", host, code, body, err)
		}
		d := g.waitDecision(t, host, url.Values{"host": {host}, "verdict": {"deny"}}, func(d decision.Decision) error {
			if d.Reason != "tls_origination_failed" && !(host == "api.nocert.test" && d.Reason == "upstream_error") {
				return fmt.Errorf("reason %s, detail %q", d.Reason, d.Detail)
			}
			return nil
		})
		if detail != "" && !strings.Contains(d.Detail, detail) {
			t.Errorf("%s: detail %q, want it to mention %s", host, d.Detail, detail)
		}
		t.Logf("%s denied: %s (%s)", host, d.Reason, d.Detail)
	}

	// Rotation under load: 200 requests/s for 20 s; halfway the client
	// certificate (and key) are replaced.
	newCert, newKey, _ := ca.issue("egress-client-2", true)
	envoyPID := g.EnvoyPID()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 32,
		DialContext: func(ctx2 context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx2, network, g.Addr(80))
		},
	}}
	var failures atomic.Int64
	var firstFailure atomic.Value
	var rotatedAt atomic.Int64 // unix nanos
	var seenNewAt atomic.Int64
	var mu sync.Mutex
	n := 0
	elapsed := paced(4000, 200, 32, func(i int) {
		if i == 2000 {
			writeCredential(t, certDir, "partner", newCert, newKey, ca.pem)
			rotatedAt.Store(time.Now().UnixNano())
		}
		resp, err := client.Get("http://api.mutual.test/")
		if err != nil {
			failures.Add(1)
			firstFailure.CompareAndSwap(nil, err.Error())
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failures.Add(1)
			firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
			return
		}
		if strings.Contains(string(b), "client egress-client-2") {
			seenNewAt.CompareAndSwap(0, time.Now().UnixNano())
		}
		mu.Lock()
		n++
		mu.Unlock()
	})
	t.Logf("rotation load: %d requests in %s", n, elapsed.Round(time.Millisecond))
	if f := failures.Load(); f > 0 {
		t.Errorf("%d requests failed during rotation; first: %v", f, firstFailure.Load())
	}
	if seenNewAt.Load() == 0 {
		t.Fatal("the upstream never saw the new client certificate")
	}
	if lag := time.Duration(seenNewAt.Load() - rotatedAt.Load()); lag > 2*time.Second {
		t.Errorf("the upstream saw the new certificate %s after the rotation, want within 2 s", lag)
	} else {
		t.Logf("new certificate at the upstream %s after the rotation", lag.Round(time.Millisecond))
	}
	if pid := g.EnvoyPID(); pid != envoyPID {
		t.Errorf("Envoy was restarted during the rotation (pid %d -> %d)", envoyPID, pid)
	}
	// No private key ever in egressd's output, nor in Envoy's config dump
	// (which shows the SDS secrets, with the key redacted).
	if strings.Contains(g.Logs(), "PRIVATE KEY") {
		t.Error("a private key appears in egressd's output")
	}
	resp, err := http.Get("http://" + g.AdminAddr + "/config_dump?include_eds")
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(dump), "egressd-client/partner") {
		t.Errorf("the config dump does not show the SDS secret egressd-client/partner")
	}
	if !strings.Contains(string(dump), base64.StdEncoding.EncodeToString([]byte("[redacted]"))) {
		t.Error("the config dump shows no redacted private key")
	}
	for _, key := range [][]byte{clientKey, newKey} {
		enc := base64.StdEncoding.EncodeToString(key)
		if strings.Contains(string(dump), "PRIVATE KEY") || strings.Contains(string(dump), enc[len(enc)/2:len(enc)/2+40]) {
			t.Fatal("a private key appears in Envoy's config dump")
		}
	}
}
