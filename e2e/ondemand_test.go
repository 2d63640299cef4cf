package e2e

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// TestOnDemandClusters: with on-demand clusters (the default) the gateway
// holds no listed host's cluster until traffic needs it; the first
// request, TLS connection and TCP connection to a listed host get it from
// egressd and go through, and it is held from then on. A Host or SNI that
// is not listed is denied at once, the first time and every time after
// (egressd answers with an absent cluster; the gateway does not wait out
// the discovery timeout), and recorded as not in the registry. A changed
// entry reaches the cluster the gateway holds; a removed one is denied.
func TestOnDemandClusters(t *testing.T) {
	skipShort(t)
	first := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "hello from first (host %s)\n", r.Host)
	}))
	second := upstreamHTTP(t, "second")
	tlsPort, cert := upstreamTLS(t, "api.ondemand.test")
	echo := upstreamEcho(t)
	dir := t.TempDir()
	g := startGateway(t, dir)
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
	)
	// The TCP entry's address names its cluster.
	db := "outbound|5432|addr|" + g.IP
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
	if err := tlsHandshake(g.Addr(443), "api.ondemand.test", roots); err != nil {
		t.Errorf("first TLS connection to a listed host: %v", err)
	}
	// TCP by address.
	if err := tcpEcho(g.Addr(5432)); err != nil {
		t.Errorf("first TCP connection to a listed address: %v", err)
	}
	g.waitDecision(t, "the TCP connection names its entry", url.Values{"layer": {"tcp"}, "verdict": {"allow"}}, func(d decision.Decision) error {
		if d.ServiceEntry != "e2e/db" || d.Port != 5432 {
			return fmt.Errorf("entry %q port %d", d.ServiceEntry, d.Port)
		}
		return nil
	})
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
	// The same unlisted Host again and again (Envoy does not ask twice for
	// a name; it holds the absent cluster egressd answered with): each
	// denied at once, as not in the registry.
	start = time.Now()
	for range 20 {
		if code, body, err := g.httpGet("made-up-1.ondemand.test"); err != nil || code != 403 || !strings.Contains(body, "not in the egress registry") {
			t.Errorf("unlisted Host again: %d %q %v, want 403", code, body, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the same unlisted Host 20 times took %v", d)
	}
	g.accessLogEntry(t, map[string]string{"layer": "http", "verdict": "deny", "reason": "not_in_registry", "host": "made-up-1.ondemand.test"})
	start = time.Now()
	for range 3 { // again and again: refused at once each time
		if err := tlsHandshake(g.Addr(443), "made-up.ondemand.test", roots); err == nil {
			t.Error("an unlisted SNI got through")
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("an unlisted SNI, three times, was refused after %v", d)
	}
	g.accessLogEntry(t, map[string]string{"layer": "tls", "verdict": "deny", "reason": "not_in_registry", "host": "made-up.ondemand.test"})
	// A listed host's request reported one by one (not 2xx) names its
	// entry, which its cluster carries.
	if code, _, err := g.httpGet("web.ondemand.test/missing"); err != nil || code != 404 {
		t.Errorf("listed host, missing page: %d %v", code, err)
	}
	eventually(t, 5*time.Second, "the 404 recorded with its entry", func() error {
		for _, d := range g.decisions(t, url.Values{"host": {"web.ondemand.test"}}) {
			if d.Status == 404 {
				if d.ServiceEntry != "e2e/web" || d.Verdict != "allow" {
					return fmt.Errorf("decision %+v", d)
				}
				return nil
			}
		}
		return fmt.Errorf("no decision with status 404")
	})
	decisions := g.decisions(t, url.Values{"host": {"made-up-1.ondemand.test"}})
	if len(decisions) == 0 || decisions[0].Reason != "not_in_registry" || decisions[0].Verdict != "deny" {
		t.Errorf("decisions for the repeated unlisted Host: %+v", decisions)
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
	// A host asked for before it was listed (the gateway holds its absent
	// cluster) is let through once an entry lists it.
	if code, _, err := g.httpGet("late.ondemand.test"); err != nil || code != 403 {
		t.Fatalf("a host not listed yet: %d %v", code, err)
	}
	writeFile(t, dir, "late.yaml", staticEntry("late", "late.ondemand.test", 80, "HTTP", second))
	eventually(t, 10*time.Second, "a host listed after it was denied", g.wantStatus("late.ondemand.test", 200))

	// A removed entry is denied as not in the registry (the gateway now
	// holds an absent cluster of that name).
	writeFile(t, dir, "entries.yaml", staticEntry("api", "api.ondemand.test", 443, "TLS", tlsPort))
	eventually(t, 10*time.Second, "removed entry denied", func() error {
		code, body, err := g.httpGet("web.ondemand.test")
		if err != nil || code != 403 || !strings.Contains(body, "not in the egress registry") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
}

// tlsHandshake connects to addr and completes a TLS handshake with sni,
// verifying the server against roots.
func tlsHandshake(addr, sni string, roots *x509.CertPool) error {
	raw, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	conn, err := tlsClient(raw, sni, roots)
	if err != nil {
		return err
	}
	return conn.Close()
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
