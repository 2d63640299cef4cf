package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestKubernetesSource: egressd reads ServiceEntries from a real API
// server. kubectl apply opens a host within 2 s and delete closes it; an
// invalid ServiceEntry gets an Event and a status condition while the
// others keep working; with the API server down the gateway keeps its
// decisions, and after a restart it resyncs. deploy/ passes a server-side
// dry run.
func TestKubernetesSource(t *testing.T) {
	skipShort(t)
	k := startKube(t)
	k.installIstioCRDs(t)
	k.kubectl(t, "create", "namespace", "e2e")
	web := upstreamHTTP(t, "web")
	g := startGateway(t, t.TempDir(), "--source", "kubernetes", "--kubeconfig", k.Kubeconfig, "--no-envoy-access-log")
	eventually(t, 60*time.Second, "gateway serving from the cluster", g.wantStatus("web.kube.test", 403))

	k.applyYAML(t, staticEntry("web", "web.kube.test", 80, "HTTP", web))
	took := eventually(t, 2*time.Second, "applied ServiceEntry allowed", g.wantStatus("web.kube.test", 200))
	t.Logf("kubectl apply -> allowed in %s", took.Round(time.Millisecond))

	k.kubectl(t, "delete", "serviceentry.networking.istio.io", "web", "-n", "e2e")
	eventually(t, 2*time.Second, "deleted ServiceEntry denied", g.wantStatus("web.kube.test", 403))

	// An invalid entry beside a valid one.
	k.applyYAML(t, staticEntry("web", "web.kube.test", 80, "HTTP", web)+"---\n"+`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad, namespace: e2e}
spec:
  hosts: [bad_name.kube.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`)
	eventually(t, 2*time.Second, "valid entry beside the invalid one", g.wantStatus("web.kube.test", 200))
	eventually(t, 10*time.Second, "status condition on the invalid entry", func() error {
		out, err := k.kubectlErr("get", "serviceentry.networking.istio.io", "bad", "-n", "e2e",
			"-o", `jsonpath={.status.conditions[?(@.type=="egressd.io/Valid")].status}/{.status.conditions[?(@.type=="egressd.io/Valid")].message}`)
		if err != nil || !strings.HasPrefix(out, "False/") || !strings.Contains(out, "spec.hosts[0]") {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	eventually(t, 10*time.Second, "Event on the invalid entry", func() error {
		out, err := k.kubectlErr("get", "events", "-n", "e2e", "--field-selector", "involvedObject.name=bad", "-o", "jsonpath={.items[*].reason}")
		if err != nil || !strings.Contains(out, "InvalidConfiguration") {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	if err := g.wantStatus("bad_name.kube.test", 403)(); err != nil {
		t.Errorf("the invalid entry's host must stay denied: %v", err)
	}

	// API server down: decisions stay as they were (fail closed, last snapshot).
	k.stopAPIServer(t)
	for i := 0; i < 5; i++ {
		if err := g.wantStatus("web.kube.test", 200)(); err != nil {
			t.Errorf("allowed host with the API server down: %v", err)
		}
		if err := g.wantStatus("evil.kube.test", 403)(); err != nil {
			t.Errorf("denied host with the API server down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Restarted: the source resyncs and new changes apply again.
	k.restartAPIServer(t)
	other := upstreamHTTP(t, "other")
	k.applyYAML(t, staticEntry("other", "other.kube.test", 80, "HTTP", other))
	took = eventually(t, 60*time.Second, "entry applied after the API server restarted", g.wantStatus("other.kube.test", 200))
	t.Logf("resynced after the restart in %s", took.Round(time.Millisecond))

	// TLS origination with a client certificate from a Secret named by
	// credentialName, in egressd's namespace.
	k.kubectl(t, "create", "namespace", "egressd-system")
	ca := newTestCA(t, "partner CA")
	_, _, serverPair := ca.issue("api.mtls.test", false, "api.mtls.test")
	clientCert, clientKey, _ := ca.issue("kube-client", true)
	mtls := tlsUpstream(t, serverPair, ca.pool())
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey, "ca.crt": ca.pem} {
		writeFile(t, dir, name, string(data))
	}
	k.kubectl(t, "create", "secret", "generic", "partner-cred", "-n", "egressd-system",
		"--from-file=tls.crt="+dir+"/tls.crt", "--from-file=tls.key="+dir+"/tls.key", "--from-file=ca.crt="+dir+"/ca.crt")
	k.applyYAML(t, staticEntry("mtls", "api.mtls.test", 80, "HTTP", mtls)+"---\n"+`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mtls, namespace: e2e}
spec:
  host: api.mtls.test
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: partner-cred}
`)
	eventually(t, 10*time.Second, "MUTUAL origination with the Secret's certificate", func() error {
		code, body, err := g.httpGet("api.mtls.test")
		if err != nil || code != 200 || !strings.Contains(body, "client kube-client") {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})

	// The manifests pass a server-side dry run.
	k.kubectl(t, "apply", "--dry-run=server", "-k", "../deploy/base")
	k.kubectl(t, "apply", "--server-side", "--dry-run=server", "-k", "../deploy/crds")
}
