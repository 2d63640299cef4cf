package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// waitDecision waits for one recorded decision matching params and check.
func (g *Gateway) waitDecision(t *testing.T, what string, params url.Values, check func(decision.Decision) error) decision.Decision {
	t.Helper()
	var found decision.Decision
	eventually(t, 5*time.Second, what, func() error {
		ds := g.decisions(t, params)
		if len(ds) == 0 {
			return fmt.Errorf("no decision for %v", params)
		}
		found = ds[0]
		return check(found)
	})
	return found
}

// TestEveryDenyPathIsADecision: each way the gateway refuses or fails a
// connection becomes a decision with its reason, and allowed TLS and TCP
// connections name their ServiceEntry.
func TestEveryDenyPathIsADecision(t *testing.T) {
	skipShort(t)
	tlsPort, _ := upstreamTLS(t, "secure.paths.test")
	echo := upstreamEcho(t)
	closed := testkit.FreePort(t) // nothing listens here: an upstream that is down
	dir := t.TempDir()
	writeFile(t, dir, "entries.yaml", staticEntry("web-down", "down.paths.test", 80, "HTTP", closed)+"---\n"+
		staticEntry("secure", "secure.paths.test", 443, "TLS", tlsPort)+"---\n"+
		staticEntry("secure-down", "secure-down.paths.test", 443, "TLS", closed)+"---\n"+
		fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: e2e}
spec:
  hosts: [db.paths.test]
  addresses: [198.18.0.98/32]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {pg: %d}}]
`, echo))
	g := startGateway(t, dir, "--no-envoy-access-log")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("unknown.paths.test", 403))

	want := func(verdict vocab.Verdict, reason vocab.Reason, serviceEntry string) func(decision.Decision) error {
		return func(d decision.Decision) error {
			if d.Verdict != verdict || d.Reason != reason || d.ServiceEntry != serviceEntry || !d.Source.IsValid() {
				return fmt.Errorf("got %s/%s entry %q source %v, want %s/%s entry %q", d.Verdict, d.Reason, d.ServiceEntry, d.Source, verdict, reason, serviceEntry)
			}
			return nil
		}
	}

	// Unknown Host.
	g.waitDecision(t, "unknown Host", url.Values{"layer": {"http"}, "host": {"unknown.paths.test"}}, want("deny", "not_in_registry", ""))

	// Allowed Host, upstream down: a denial that names the entry.
	if code, _, err := g.httpGet("down.paths.test"); err != nil || code != 503 {
		t.Errorf("upstream down: %d %v, want 503", code, err)
	}
	d := g.waitDecision(t, "HTTP upstream down", url.Values{"layer": {"http"}, "host": {"down.paths.test"}}, want("deny", "upstream_error", "e2e/web-down"))
	if d.Flags == "" || d.Status != 503 {
		t.Errorf("upstream-down decision without flags or status: %+v", d)
	}

	tlsConn := func(sni string) {
		if conn, err := g.tlsDial(sni, nil, ""); err == nil {
			conn.Close()
		}
	}
	// Allowed SNI: named by its entry (the handshake fails on our side:
	// the upstream's certificate is not trusted here, which is fine).
	tlsConn("secure.paths.test")
	g.waitDecision(t, "allowed SNI", url.Values{"layer": {"tls"}, "host": {"secure.paths.test"}}, want("allow", "allowed", "e2e/secure"))
	// Allowed SNI, upstream down.
	tlsConn("secure-down.paths.test")
	g.waitDecision(t, "TLS upstream down", url.Values{"layer": {"tls"}, "host": {"secure-down.paths.test"}}, want("deny", "upstream_error", "e2e/secure-down"))
	// Unknown SNI.
	tlsConn("unknown.paths.test")
	g.waitDecision(t, "unknown SNI", url.Values{"layer": {"tls"}, "host": {"unknown.paths.test"}}, want("deny", "not_in_registry", ""))
	// No SNI at all.
	tlsConn("")
	g.waitDecision(t, "no SNI", url.Values{"layer": {"tls"}, "reason": {"no_sni"}}, want("deny", "no_sni", ""))

	// TCP to an address no entry lists, on a port one entry uses.
	if err := tcpEcho(g.Addr(5432)); err == nil {
		t.Error("TCP to an unlisted address was proxied")
	}
	d = g.waitDecision(t, "unlisted TCP address", url.Values{"layer": {"tcp"}}, want("deny", "not_in_registry", ""))
	if d.Port != 5432 || d.Destination != g.Addr(5432) {
		t.Errorf("TCP decision port %d destination %q, want 5432 and %s", d.Port, d.Destination, g.Addr(5432))
	}
}
