package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// headerRecorder is an upstream that answers with the names of the
// request headers it received, sorted, lower case, one line.
func headerRecorder(w http.ResponseWriter, r *http.Request) {
	var names []string
	for k := range r.Header {
		names = append(names, strings.ToLower(k))
	}
	slices.Sort(names)
	fmt.Fprintf(w, "headers: %s\n", strings.Join(names, " "))
}

// leakyHeaders are what a mesh workload's request carries that must not
// leave the cluster: its sidecar's forwarding headers, request id, peer
// metadata and client certificate details.
var leakyHeaders = map[string]string{
	"X-Forwarded-For":          "10.244.1.7",
	"X-Forwarded-Proto":        "https",
	"X-Forwarded-Host":         "checkout.shop.svc.cluster.local",
	"X-Forwarded-Client-Cert":  "By=spiffe://cluster.local/ns/shop/sa/checkout",
	"X-Request-Id":             "0f8fad5b-d9cb-469f-a165-70867728950e",
	"X-Envoy-Peer-Metadata":    "ChQKDkFQUF9DT05UQUlORVJTEgIaAA",
	"X-Envoy-Peer-Metadata-Id": "sidecar~10.244.1.7~checkout-7d9f.shop~shop.svc.cluster.local",
	"X-Envoy-Attempt-Count":    "1",
	"X-Envoy-Internal":         "true",
}

// wantHeaders is exactly what the upstream must see: the application's
// own headers (X-App), and Go's client's.
const wantHeaders = "headers: accept-encoding user-agent x-app"

func sendLeaky(client *http.Client, rawURL string) (string, error) {
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		return "", err
	}
	for k, v := range leakyHeaders {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-App", "kept")
	req.Header.Set("User-Agent", "e2e")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = fmt.Fprint(&b, readAll(resp))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b.String())
	}
	return strings.TrimSpace(b.String()), err
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestUpstreamSeesNoCallerHeaders: on every HTTP path through the gateway
// (plaintext, TLS origination, the mesh listener) the external upstream
// receives exactly the application's headers: no x-envoy-*, x-forwarded-*,
// x-request-id, nor the caller's address in x-envoy-external-address.
func TestUpstreamSeesNoCallerHeaders(t *testing.T) {
	skipShort(t)
	plain := httpServer(t, http.HandlerFunc(headerRecorder))

	ca := newTestCA(t, "headers test CA")
	_, _, pair := ca.issue("api.headers.test", false, "api.headers.test")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := &http.Server{Handler: http.HandlerFunc(headerRecorder), TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}}
	go func() { _ = tlsSrv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = tlsSrv.Close() })
	originated := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	caDir := filepath.Join(t.TempDir(), "ca")
	writeFile(t, dir, "entries.yaml", staticEntry("plain", "plain.headers.test", 80, "HTTP", plain)+"---\n"+
		staticEntry("api", "api.headers.test", 80, "HTTP", originated)+"---\n"+
		destinationRule("api", "api.headers.test", fmt.Sprintf("      mode: SIMPLE\n      caCertificates: %s\n", caFile)))
	g := startGateway(t, dir, "--mesh-ca-dir", caDir, "--no-envoy-access-log")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("plain.headers.test", 200))

	viaPlaintext := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.Addr(80))
		},
	}}
	for name, rawURL := range map[string]string{
		"plaintext":       "http://plain.headers.test/",
		"TLS origination": "http://api.headers.test/",
	} {
		got, err := sendLeaky(viaPlaintext, rawURL)
		t.Logf("%s: %s", name, got)
		if err != nil || got != wantHeaders {
			t.Errorf("%s: upstream saw %q (%v), want %q", name, got, err, wantHeaders)
		}
	}

	mesh := issueMeshCert(t, caDir, "shop", "checkout")
	viaMesh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return mesh.dial(ctx, g.Addr(15443), "outbound_.80_._.plain.headers.test")
		},
	}}
	eventually(t, 10*time.Second, "mesh listener", func() error {
		got, err := sendLeaky(viaMesh, "https://plain.headers.test/")
		if err != nil {
			return err
		}
		if got != wantHeaders {
			t.Errorf("mesh listener: upstream saw %q, want %q", got, wantHeaders)
		}
		return nil
	})
}

// httpServer serves h on a loopback port and returns the port.
func httpServer(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestHostRouting: under REGISTRY_ONLY the Host names the cluster, for a
// Host as clients send it (Envoy's own cluster_header path) and for one in
// upper case or with the service port (the Lua path). A client cannot pick
// the cluster itself: the header that carries it is overwritten before
// routing and never reaches the upstream.
func TestHostRouting(t *testing.T) {
	skipShort(t)
	var hits atomic.Int64
	plain := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		headerRecorder(w, r)
	}))
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", staticEntry("plain", "plain.routing.test", 80, "HTTP", plain))
	g := startGateway(t, dir, "--no-envoy-access-log")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("plain.routing.test", 200))

	get := func(host string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+g.Addr(80)+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(readAll(resp))
	}
	for host, want := range map[string]int{
		"plain.routing.test":      200,
		"PLAIN.Routing.Test":      200,
		"plain.routing.test:80":   200,
		"plain.routing.test:8080": 403, // another port's name
		"other.routing.test":      403,
		"plain.routing.test.":     403, // not the listed name
		"plain.routing.test.evil": 403,
		"plain|80||routing.test":  400, // not a host at all
	} {
		if got, body := get(host, nil); got != want && !(want == 400 && got == 403) {
			t.Errorf("Host %q: %d %s, want %d", host, got, body, want)
		}
	}
	before := hits.Load()
	spoof := map[string]string{"X-Egressd-Cluster": "outbound|80||plain.routing.test"}
	if got, body := get("other.routing.test", spoof); got != 403 {
		t.Errorf("a client naming the cluster itself: %d %s, want 403", got, body)
	}
	if hits.Load() != before {
		t.Error("the spoofed cluster header reached the listed upstream")
	}
	if got, body := get("plain.routing.test", spoof); got != 200 || body != "headers: accept-encoding user-agent" {
		t.Errorf("listed Host with the header: %d %q: the upstream must not see it", got, body)
	}
}
