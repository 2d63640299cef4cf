package e2e

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOnDemandClusters: with on-demand clusters (--on-demand-clusters) the gateway
// holds no listed host's cluster until traffic needs it; the first
// request, TLS connection and TCP connection to a listed host get it from
// egressd and go through, and it is held from then on. A Host or SNI that
// is not listed is denied at once (egressd answers "no such cluster"; the
// gateway does not wait out the discovery timeout). A changed entry
// reaches the cluster the gateway holds; a removed one is denied.
func TestOnDemandClusters(t *testing.T) {
	skipShort(t)
	first := upstreamHTTP(t, "first")
	second := upstreamHTTP(t, "second")
	tlsPort, cert := upstreamTLS(t, "api.ondemand.test")
	echo := upstreamEcho(t)
	dir := t.TempDir()
	g := startGateway(t, dir, "--on-demand-clusters")
	entries := func(httpUpstream int) string {
		return staticEntry("web", "web.ondemand.test", 80, "HTTP", httpUpstream) + "---\n" +
			staticEntry("api", "api.ondemand.test", 443, "TLS", tlsPort) + "---\n" +
			fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: e2e}
spec:
  hosts: [db.ondemand.test]
  addresses: [%s/32]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {pg: %d}}]
`, g.IP, echo)
	}
	writeFile(t, dir, "entries.yaml", entries(first))
	const (
		web = "outbound|80||web.ondemand.test"
		api = "outbound|443|tls|api.ondemand.test"
		db  = "outbound|5432||db.ondemand.test"
	)
	// The configuration is in place when the unlisted-host answer is
	// egressd's; no host cluster is held yet.
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("unlisted.ondemand.test", 403))
	held := g.envoyClusters(t)
	for _, c := range []string{web, api, db} {
		if slices.Contains(held, c) {
			t.Errorf("before any traffic the gateway already holds %s", c)
		}
	}
	if !slices.Contains(held, "egressd_blackhole") {
		t.Errorf("the gateway's own clusters are missing: %v", held)
	}

	// HTTP: the first request to a listed host goes through.
	if code, body, err := g.httpGet("web.ondemand.test"); err != nil || code != 200 || !strings.Contains(body, "hello from first") {
		t.Fatalf("first request to a listed host: %d %q %v", code, body, err)
	}
	// Also when the Host is not lower case (the Lua cluster specifier).
	if code, body, err := g.httpGet("WEB.OnDemand.Test"); err != nil || code != 200 {
		t.Errorf("upper-case Host: %d %q %v", code, body, err)
	}
	// TLS passthrough by SNI.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	raw, err := net.DialTimeout("tcp", g.Addr(443), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tlsClient(raw, "api.ondemand.test", roots); err != nil {
		t.Errorf("first TLS connection to a listed host: %v", err)
	} else {
		conn.Close()
	}
	// TCP by address.
	if err := tcpEcho(g.Addr(5432)); err != nil {
		t.Errorf("first TCP connection to a listed address: %v", err)
	}
	held = g.envoyClusters(t)
	for _, c := range []string{web, api, db} {
		if !slices.Contains(held, c) {
			t.Errorf("after traffic the gateway does not hold %s: %v", c, held)
		}
	}

	// Unlisted names are denied at once, not after the discovery timeout.
	start := time.Now()
	for i := range 20 {
		host := fmt.Sprintf("made-up-%d.ondemand.test", i)
		if code, _, err := g.httpGet(host); err != nil || code != 403 {
			t.Errorf("unlisted Host %s: %d %v, want 403", host, code, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 unlisted Hosts took %v: the gateway waits for clusters that do not exist", d)
	}
	// The same unlisted Host again: Envoy does not ask for a name twice,
	// so it is denied when the discovery times out (1 s), never let
	// through (the limit that keeps on-demand clusters opt-in).
	for i := range 2 {
		start := time.Now()
		if code, _, err := g.httpGet("made-up-1.ondemand.test"); err != nil || code != 403 {
			t.Errorf("unlisted Host again: %d %v, want 403", code, err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("the same unlisted Host, time %d: denied after %v", i+2, d)
		}
	}
	raw, err = net.DialTimeout("tcp", g.Addr(443), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if conn, err := tlsClient(raw, "made-up.ondemand.test", roots); err == nil {
		conn.Close()
		t.Error("an unlisted SNI got through")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("an unlisted SNI was refused after %v", d)
	}
	if held := g.envoyClusters(t); slices.ContainsFunc(held, func(c string) bool { return strings.Contains(c, "made-up") }) {
		t.Errorf("the gateway holds clusters for made-up names: %v", held)
	}

	// A changed entry reaches the cluster the gateway holds.
	writeFile(t, dir, "entries.yaml", entries(second))
	eventually(t, 10*time.Second, "changed endpoint", func() error {
		code, body, err := g.httpGet("web.ondemand.test")
		if err != nil || code != 200 || !strings.Contains(body, "hello from second") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	// A removed entry is denied, and its cluster goes.
	writeFile(t, dir, "entries.yaml", staticEntry("api", "api.ondemand.test", 443, "TLS", tlsPort))
	eventually(t, 10*time.Second, "removed entry denied", g.wantStatus("web.ondemand.test", 403))
	eventually(t, 10*time.Second, "removed cluster gone", func() error {
		if held := g.envoyClusters(t); slices.Contains(held, web) {
			return fmt.Errorf("still held: %s", web)
		}
		return nil
	})
}

// envoyClusters lists the clusters the managed Envoy holds now (its admin
// /clusters).
func (g *Gateway) envoyClusters(t *testing.T) []string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + g.AdminAddr + "/clusters?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ClusterStatuses []struct {
			Name string `json:"name"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("admin /clusters: %v: %s", err, b)
	}
	var names []string
	for _, c := range out.ClusterStatuses {
		names = append(names, c.Name)
	}
	return names
}
