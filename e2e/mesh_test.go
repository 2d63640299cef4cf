package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
)

// meshClient is a workload of the mesh: its certificate (nil: none) and
// the mesh's trust bundle to verify the gateway with.
type meshClient struct {
	cert   *tls.Certificate
	bundle *x509.CertPool
}

// issueMeshCert mints a workload certificate with egressctl from the
// gateway's CA folder.
func issueMeshCert(t *testing.T, caDir, ns, sa string) meshClient {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(egressctlBin, "cert", "issue", "--ca-dir", caDir, "--namespace", ns, "--service-account", sa, "--ttl", "1h", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("egressctl cert issue: %v\n%s", err, b)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(out, "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	return meshClient{cert: &pair, bundle: pool}
}

// dial opens mutual TLS to the gateway's mesh listener with sni and
// verifies that the gateway's certificate chains to the mesh bundle and
// names a SPIFFE identity.
func (c meshClient) dial(ctx context.Context, addr, sni string) (net.Conn, error) {
	cfg := &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // a SPIFFE certificate has no DNS name to check: verified below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.bundle, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].Scheme != "spiffe" {
				return errors.New("the gateway's certificate names no SPIFFE identity")
			}
			return nil
		},
	}
	if c.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cert}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	// TLS 1.3: a server that refuses the client certificate says so after
	// the client's handshake completes; a read shows it.
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// request sends one HTTP request for host through the mesh listener.
func (c meshClient) request(g *Gateway, method, host string, port int) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx, g.Addr(15443), fmt.Sprintf("outbound_.%d_._.%s", port, host))
		},
	}}
	req, err := http.NewRequest(method, fmt.Sprintf("https://%s/", host), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

const meshPolicies = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-api-only, namespace: egress}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/web-api"]}}]
    to: [{operation: {hosts: [web.mesh.test, secure.mesh.test]}}]
  - from: [{source: {namespaces: [default, team-a]}}]
    to: [{operation: {hosts: [team.mesh.test]}}]
  - from: [{source: {namespaces: [team-b]}}]
    to: [{operation: {hosts: [web.mesh.test]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-post, namespace: egress}
spec:
  action: DENY
  rules:
  - to: [{operation: {hosts: [web.mesh.test], methods: [POST]}}]
---
# The mesh root namespace's policies apply to the gateway too.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {hosts: [web.mesh.test], methods: [DELETE]}}]
---
# Written for the web-api workloads of an application namespace: not for
# the gateway, so it must not deny web-api's requests there.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-api-inbound, namespace: default}
spec:
  selector: {matchLabels: {app: web-api}}
  action: DENY
  rules:
  - to: [{operation: {hosts: [web.mesh.test]}}]
---
# team-a's workloads reach their own namespace's external hosts only.
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-a}
spec:
  egress:
  - hosts: ["./*"]
---
# team-b dry-runs the same lockdown (--audit-namespaces team-b).
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-b}
spec:
  egress:
  - hosts: ["./*"]
---
# An application namespace's PeerAuthentication: not the gateway's mode.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: PERMISSIVE}
`

func peerAuthentication(mode string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: gateway, namespace: egress}
spec:
  mtls: {mode: %s}
`, mode)
}

// TestMeshIdentityAndPolicy: callers with mesh certificates reach allowed
// hosts through the mesh listener, and AuthorizationPolicies decide per
// caller; every decision names the caller.
func TestMeshIdentityAndPolicy(t *testing.T) {
	skipShort(t)
	web := upstreamHTTP(t, "web")
	securePort, secureCert := upstreamTLS(t, "secure.mesh.test")
	dir := t.TempDir()
	caDir := filepath.Join(t.TempDir(), "ca")
	team := upstreamHTTP(t, "team")
	teamEntry := strings.Replace(staticEntry("team", "team.mesh.test", 80, "HTTP", team), "namespace: e2e\n", "namespace: team-a\n", 1)
	teamEntry = strings.Replace(teamEntry, "spec:\n", "spec:\n  exportTo: [\".\"]\n", 1)
	writeFile(t, dir, "entries.yaml", staticEntry("web", "web.mesh.test", 80, "HTTP", web)+"---\n"+
		staticEntry("secure", "secure.mesh.test", 443, "TLS", securePort)+"---\n"+teamEntry)
	writeFile(t, dir, "policies.yaml", meshPolicies)
	writeFile(t, dir, "peer.yaml", peerAuthentication("STRICT"))
	// The gateway's policies are in its namespace, egress.
	g := startGateway(t, dir, "--mesh-ca-dir", caDir, "--no-envoy-access-log", "--gateway-namespace", "egress", "--audit-namespaces", "team-b")
	eventually(t, 30*time.Second, "gateway serving", g.wantStatus("web.mesh.test", 200))

	webAPI := issueMeshCert(t, caDir, "default", "web-api")
	other := issueMeshCert(t, caDir, "default", "other")
	anonymous := meshClient{bundle: webAPI.bundle}

	eventually(t, 10*time.Second, "web-api reaches web.mesh.test", func() error {
		code, body, err := webAPI.request(g, "GET", "web.mesh.test", 80)
		if err != nil || code != 200 || !strings.Contains(body, "hello from web") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	g.waitDecision(t, "allowed, with identity", url.Values{"host": {"web.mesh.test"}, "verdict": {"allow"}, "layer": {"http"}}, func(d decision.Decision) error {
		if d.Identity != "spiffe://cluster.local/ns/default/sa/web-api" {
			return fmt.Errorf("identity %q", d.Identity)
		}
		return nil
	})

	// Another workload: denied by the ALLOW policy that names only web-api.
	if code, _, err := other.request(g, "GET", "web.mesh.test", 80); err != nil || code != 403 {
		t.Errorf("other: %d %v, want 403", code, err)
	}
	d := g.waitDecision(t, "other denied", url.Values{"reason": {"policy_denied"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if d.Identity != "spiffe://cluster.local/ns/default/sa/other" {
			return fmt.Errorf("identity %q", d.Identity)
		}
		return nil
	})
	if !strings.Contains(d.Detail, "egress/web-api-only") || !strings.Contains(d.Detail, "cluster.local/ns/default/sa/web-api") {
		t.Errorf("the denial does not name the policy and the principal it allows: %q", d.Detail)
	}

	// GET allowed, POST denied for the same principal and host.
	if code, _, err := webAPI.request(g, "POST", "web.mesh.test", 80); err != nil || code != 403 {
		t.Errorf("web-api POST: %d %v, want 403", code, err)
	}
	g.waitDecision(t, "POST denied by no-post", url.Values{"reason": {"policy_denied"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if d.Method != "POST" || !strings.Contains(d.Detail, "egress/no-post") {
			return fmt.Errorf("%s %q", d.Method, d.Detail)
		}
		return nil
	})

	// DELETE: denied by the root namespace's policy.
	if code, _, err := webAPI.request(g, "DELETE", "web.mesh.test", 80); err != nil || code != 403 {
		t.Errorf("web-api DELETE: %d %v, want 403", code, err)
	}
	g.waitDecision(t, "DELETE denied by the root namespace's no-delete", url.Values{"reason": {"policy_denied"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if d.Method != "DELETE" || !strings.Contains(d.Detail, "istio-system/no-delete") {
			return fmt.Errorf("%s %q", d.Method, d.Detail)
		}
		return nil
	})

	// exportTo: the team-a entry is exported to its own namespace only.
	teamA := issueMeshCert(t, caDir, "team-a", "billing")
	if code, body, err := teamA.request(g, "GET", "team.mesh.test", 80); err != nil || code != 200 || !strings.Contains(body, "hello from team") {
		t.Errorf("team-a caller to its own namespace's entry: %d %q %v", code, body, err)
	}
	if code, _, err := webAPI.request(g, "GET", "team.mesh.test", 80); err != nil || code != 403 {
		t.Errorf("default caller to a team-a-only entry: %d %v, want 403", code, err)
	}
	g.waitDecision(t, "exportTo denial", url.Values{"reason": {"not_exported"}, "host": {"team.mesh.test"}}, func(d decision.Decision) error {
		if !strings.Contains(d.Detail, "ServiceEntry team-a/team is not exported to the caller's namespace") ||
			d.Identity != "spiffe://cluster.local/ns/default/sa/web-api" {
			return fmt.Errorf("%q %q", d.Identity, d.Detail)
		}
		return nil
	})

	// Sidecar: team-a's workloads may reach their own namespace's hosts
	// only (egress hosts "./*").
	if code, _, err := teamA.request(g, "GET", "web.mesh.test", 80); err != nil || code != 403 {
		t.Errorf("team-a caller to a host its Sidecar does not list: %d %v, want 403", code, err)
	}
	g.waitDecision(t, "Sidecar scope denial", url.Values{"reason": {"sidecar_scope"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if !strings.Contains(d.Detail, "Sidecar team-a/default") || d.Identity != "spiffe://cluster.local/ns/team-a/sa/billing" {
			return fmt.Errorf("%q %q", d.Identity, d.Detail)
		}
		return nil
	})

	// team-b's Sidecar is dry-run: let through, recorded as audit-deny.
	teamB := issueMeshCert(t, caDir, "team-b", "app")
	if code, body, err := teamB.request(g, "GET", "web.mesh.test", 80); err != nil || code != 200 || !strings.Contains(body, "hello from web") {
		t.Errorf("team-b (dry run) to a host its Sidecar does not list: %d %q %v, want 200", code, body, err)
	}
	g.waitDecision(t, "the dry-run Sidecar", url.Values{"verdict": {"audit-deny"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if d.Reason != "sidecar_scope" || !strings.Contains(d.Detail, "Sidecar team-b/default") || d.Identity != "spiffe://cluster.local/ns/team-b/sa/app" {
			return fmt.Errorf("%s %q %q", d.Reason, d.Identity, d.Detail)
		}
		return nil
	})

	// TLS to a passthrough host inside the mesh TLS.
	conn, err := webAPI.dial(context.Background(), g.Addr(15443), "outbound_.443_._.secure.mesh.test")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(secureCert)
	inner, err := tlsClient(conn, "secure.mesh.test", roots)
	if err != nil {
		t.Errorf("inner TLS to secure.mesh.test through the mesh listener: %v", err)
	} else {
		inner.Close()
	}

	// STRICT: no certificate, no connection.
	if code, _, err := anonymous.request(g, "GET", "web.mesh.test", 80); err == nil {
		t.Errorf("STRICT: a caller without a certificate got %d", code)
	}
	// A certificate from another CA: refused.
	foreign := newTestCA(t, "foreign mesh")
	_, _, foreignPair := foreign.issue("web-api", true)
	if code, _, err := (meshClient{cert: &foreignPair, bundle: webAPI.bundle}).request(g, "GET", "web.mesh.test", 80); err == nil {
		t.Errorf("a certificate from another CA got %d", code)
	}

	// PERMISSIVE: a caller without a certificate is let in and recorded as
	// unauthenticated (and the ALLOW policy still refuses it).
	writeFile(t, dir, "peer.yaml", peerAuthentication("PERMISSIVE"))
	eventually(t, 10*time.Second, "PERMISSIVE applied", func() error {
		code, _, err := anonymous.request(g, "GET", "web.mesh.test", 80)
		if err != nil || code != 403 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	g.waitDecision(t, "unauthenticated recorded", url.Values{"reason": {"policy_denied"}, "host": {"web.mesh.test"}}, func(d decision.Decision) error {
		if d.Identity != "unauthenticated" {
			return fmt.Errorf("identity %q", d.Identity)
		}
		return nil
	})
}
