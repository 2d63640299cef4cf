package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/egress/decision"
)

// sidecarScope: two namespaces, each with an external host of its own and
// a Sidecar that lets its workloads reach their own namespace's hosts
// only ("./*"), and a pod in each at an address of its own on loopback.
const sidecarScope = `apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: team-b}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team-a}
spec:
  serviceAccountName: app
  containers: [{name: app, image: app}]
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team-b}
spec:
  serviceAccountName: app
  containers: [{name: app, image: app}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: team-a}
spec:
  hosts: [a.scope.test]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: team-b}
spec:
  hosts: [b.scope.test]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-a}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-b}
spec:
  egress: [{hosts: ["./*"]}]
---
# team-c dry-runs the same lockdown: its namespace's label says so.
apiVersion: v1
kind: Namespace
metadata: {name: team-c, labels: {egressd.io/sidecar-dry-run: "true"}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: team-c}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team-c}
spec:
  serviceAccountName: app
  containers: [{name: app, image: app}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-c}
spec:
  egress: [{hosts: ["./*"]}]
`

// TestSidecarScopeByPod: with the Kubernetes source, the DNS proxy knows
// the namespace of the querying pod by its address and answers only the
// names that namespace's Sidecar lists, and the gateway's plaintext ports
// (HTTP by Host, TLS by SNI) let each pod reach only those hosts; the
// refusals are decisions naming the workload and the Sidecar. A pod's new
// address reaches the gateway without a listener change.
func TestSidecarScopeByPod(t *testing.T) {
	k := startKube(t)
	k.installIstioCRDs(t)
	k.applyYAML(t, sidecarScope)
	// Hosts the gateway serves on its plaintext ports, one HTTP and one
	// TLS per namespace, each with a loopback upstream.
	web := upstreamHTTP(t, "web")
	tlsPort, _ := upstreamTLS(t, "a-tls.scope.test", "b-tls.scope.test")
	for _, ns := range []string{"a", "b"} {
		k.applyYAML(t, namespacedEntry("team-"+ns, ns+"-web", ns+"-web.scope.test", 80, "HTTP", web)+"---\n"+
			namespacedEntry("team-"+ns, ns+"-tls", ns+"-tls.scope.test", 443, "TLS", tlsPort))
	}
	podIPs := map[string]string{"team-a": "127.0.0.51", "team-b": "127.0.0.52", "team-c": "127.0.0.54"}
	for ns, ip := range podIPs {
		k.kubectl(t, "patch", "pod", "app", "-n", ns, "--subresource=status", "--type=merge",
			"-p", fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}]}}`, ip, ip))
	}
	g := startGateway(t, t.TempDir(), "--source", "kubernetes", "--kubeconfig", k.Kubeconfig, "--no-envoy-access-log")

	query := func(from, name string) (*dns.Msg, error) {
		c := &dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(q, g.DNSAddr)
		return r, err
	}
	eventually(t, 60*time.Second, "team-a's pod answered its own namespace's host", func() error {
		r, err := query(podIPs["team-a"], "a.scope.test.")
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return fmt.Errorf("%v %v", r, err)
		}
		return nil
	})
	eventually(t, 10*time.Second, "team-a's pod refused team-b's host", func() error {
		r, err := query(podIPs["team-a"], "b.scope.test.")
		if err != nil || r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%v %v", r, err)
		}
		return nil
	})
	g.waitDecision(t, "the Sidecar refusal", url.Values{"reason": {"sidecar_scope"}, "host": {"b.scope.test"}}, func(d decision.Decision) error {
		if d.Identity != "team-a/app" || !strings.Contains(d.Detail, "Sidecar team-a/default") {
			return fmt.Errorf("identity %q detail %q", d.Identity, d.Detail)
		}
		return nil
	})
	// team-b's pod: the other way round.
	if r, err := query(podIPs["team-b"], "b.scope.test."); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Errorf("team-b's pod to its own host: %v %v", r, err)
	}
	if r, err := query(podIPs["team-b"], "a.scope.test."); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("team-b's pod to team-a's host: %v %v", r, err)
	}
	// team-c's Sidecar is dry-run: answered, and recorded as audit-deny.
	if r, err := query(podIPs["team-c"], "a.scope.test."); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Errorf("team-c's pod (audited) to team-a's host: %v %v", r, err)
	}
	g.waitDecision(t, "the audited Sidecar", url.Values{"verdict": {"audit-deny"}, "host": {"a.scope.test"}}, func(d decision.Decision) error {
		if d.Reason != "sidecar_scope" || d.Identity != "team-c/app" {
			return fmt.Errorf("reason %s identity %q", d.Reason, d.Identity)
		}
		return nil
	})
	// An address no pod has is not scoped (a node, a VM): answered.
	if r, err := query("127.0.0.53", "b.scope.test."); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("a caller that is no pod: %v %v", r, err)
	}

	// The gateway's plaintext ports, by the caller's address.
	eventually(t, 30*time.Second, "team-a's pod reaches its own HTTP host", wantHTTPFrom(g, podIPs["team-a"], "a-web.scope.test", 200))
	eventually(t, 10*time.Second, "team-a's pod refused team-b's HTTP host", wantHTTPFrom(g, podIPs["team-a"], "b-web.scope.test", 403))
	g.waitDecision(t, "the HTTP Sidecar refusal", url.Values{"reason": {"sidecar_scope"}, "host": {"b-web.scope.test"}, "layer": {"http"}}, func(d decision.Decision) error {
		if d.Identity != "team-a/app" || !strings.Contains(d.Detail, "Sidecar team-a/default") || d.Verdict != "deny" {
			return fmt.Errorf("verdict %s identity %q detail %q", d.Verdict, d.Identity, d.Detail)
		}
		return nil
	})
	for _, c := range []struct {
		from, host string
		want       int
	}{
		{podIPs["team-b"], "b-web.scope.test", 200},
		{podIPs["team-b"], "a-web.scope.test", 403},
		{podIPs["team-c"], "a-web.scope.test", 200}, // dry run
		{"127.0.0.53", "a-web.scope.test", 200},     // no pod
	} {
		if err := wantHTTPFrom(g, c.from, c.host, c.want)(); err != nil {
			t.Errorf("from %s to %s: %v", c.from, c.host, err)
		}
	}
	g.waitDecision(t, "the audited Sidecar on HTTP", url.Values{"verdict": {"audit-deny"}, "host": {"a-web.scope.test"}}, func(d decision.Decision) error {
		if d.Reason != "sidecar_scope" || d.Identity != "team-c/app" || d.Status != 200 {
			return fmt.Errorf("reason %s identity %q status %d", d.Reason, d.Identity, d.Status)
		}
		return nil
	})
	if err := tlsFrom(g, podIPs["team-a"], "a-tls.scope.test"); err != nil {
		t.Errorf("team-a's pod to its own TLS host: %v", err)
	}
	if err := tlsFrom(g, podIPs["team-a"], "b-tls.scope.test"); err == nil {
		t.Error("team-a's pod reached team-b's TLS host")
	}
	g.waitDecision(t, "the TLS Sidecar refusal", url.Values{"reason": {"sidecar_scope"}, "host": {"b-tls.scope.test"}}, func(d decision.Decision) error {
		if d.Identity != "team-a/app" || d.Layer != "tls" || !strings.Contains(d.Detail, "Sidecar team-a/default") {
			return fmt.Errorf("layer %s identity %q detail %q", d.Layer, d.Identity, d.Detail)
		}
		return nil
	})

	// team-b's pod moves to a new address: the scope follows by ECDS,
	// no listener is modified.
	modified := envoyStat(t, g, "listener_manager.listener_modified")
	k.kubectl(t, "patch", "pod", "app", "-n", "team-b", "--subresource=status", "--type=merge",
		"-p", `{"status":{"podIP":"127.0.0.55","podIPs":[{"ip":"127.0.0.55"}]}}`)
	eventually(t, 15*time.Second, "team-b's pod at its new address is scoped", wantHTTPFrom(g, "127.0.0.55", "a-web.scope.test", 403))
	if err := wantHTTPFrom(g, "127.0.0.55", "b-web.scope.test", 200)(); err != nil {
		t.Errorf("team-b's pod at its new address to its own host: %v", err)
	}
	eventually(t, 10*time.Second, "the old address is no pod's any more", wantHTTPFrom(g, podIPs["team-b"], "a-web.scope.test", 200))
	if now := envoyStat(t, g, "listener_manager.listener_modified"); now != modified {
		t.Errorf("pod churn modified listeners: %d -> %d", modified, now)
	}
}

// namespacedEntry is staticEntry in namespace ns.
func namespacedEntry(ns, name, host string, servicePort int, protocol string, upstreamPort int) string {
	return strings.Replace(staticEntry(name, host, servicePort, protocol, upstreamPort), "namespace: e2e", "namespace: "+ns, 1)
}

// wantHTTPFrom is a condition: GET / for host through the gateway's port
// 80, sent from address from, answers with status.
func wantHTTPFrom(g *Gateway, from, host string, status int) func() error {
	return func() error {
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
				return d.DialContext(ctx, network, g.Addr(80))
			},
		}}
		resp, err := client.Get("http://" + host + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			return fmt.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(string(body)), status)
		}
		return nil
	}
}

// tlsFrom completes a TLS handshake with host through the gateway's port
// 443 (passthrough by SNI) from address from.
func tlsFrom(g *Gateway, from, host string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", g.Addr(443), &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	return c.Close()
}

// TestPolicyScopeInKubernetes: with the Kubernetes source, an application
// namespace's AuthorizationPolicy for its own workloads does not change
// the gateway's decisions; one in the mesh root namespace does; the
// gateway's namespace comes from POD_NAMESPACE as in its pod.
func TestPolicyScopeInKubernetes(t *testing.T) {
	web := upstreamHTTP(t, "web")
	k := startKube(t)
	k.installIstioCRDs(t)
	k.applyYAML(t, `apiVersion: v1
kind: Namespace
metadata: {name: e2e}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: egress}
---
`+staticEntry("web", "web.scope.test", 80, "HTTP", web)+`---
# An application's own inbound rule: not for the gateway.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-inbound, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {hosts: [web.scope.test]}}]}]
---
# The mesh root namespace's: applies at the gateway.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {hosts: [web.scope.test], methods: [DELETE]}}]}]
---
# The gateway's own namespace (POD_NAMESPACE): applies.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-put, namespace: egress}
spec:
  action: DENY
  rules: [{to: [{operation: {hosts: [web.scope.test], methods: [PUT]}}]}]
`)
	caDir := filepath.Join(t.TempDir(), "ca")
	t.Setenv("POD_NAMESPACE", "egress")
	g := startGateway(t, t.TempDir(), "--source", "kubernetes", "--kubeconfig", k.Kubeconfig, "--mesh-ca-dir", caDir, "--no-envoy-access-log")
	eventually(t, 60*time.Second, "egressd's mesh CA created", func() error {
		_, err := os.Stat(filepath.Join(caDir, "ca-cert.pem"))
		return err
	})
	caller := issueMeshCert(t, caDir, "shop", "cart")
	eventually(t, 60*time.Second, "GET allowed: the shop namespace's policy is not the gateway's", func() error {
		code, body, err := caller.request(g, "GET", "web.scope.test", 80)
		if err != nil || code != 200 || !strings.Contains(body, "hello from web") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	for method, policy := range map[string]string{"DELETE": "istio-system/no-delete", "PUT": "egress/no-put"} {
		if code, _, err := caller.request(g, method, "web.scope.test", 80); err != nil || code != 403 {
			t.Errorf("%s: %d %v, want 403 from %s", method, code, err, policy)
		}
		g.waitDecision(t, method+" denied by "+policy, url.Values{"reason": {"policy_denied"}, "host": {"web.scope.test"}}, func(d decision.Decision) error {
			if d.Method != method || !strings.Contains(d.Detail, policy) {
				return fmt.Errorf("%s %q", d.Method, d.Detail)
			}
			return nil
		})
	}
}
