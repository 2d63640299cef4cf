package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/origination/pemfile"
)

// secretData reads a Secret's data with kubectl ("" keys: none yet).
func (k *Kube) secretData(t *testing.T, ns, name string) map[string][]byte {
	t.Helper()
	out := k.kubectl(t, "get", "secret", "-n", ns, name, "-o", "json")
	var s struct {
		Data map[string][]byte `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("secret %s/%s: %v", ns, name, err)
	}
	return s.Data
}

// TestGatewayCredentialsFromSecret: in Kubernetes mode the gateway pods'
// xDS client certificate comes from the Secret egress-gateway-xds, which
// deploy/base creates empty and egressd's leader fills and renews. The
// test plays the kubelet (it copies the Secret into a folder the way a
// Secret volume is updated) and runs the gateway's Envoy from `egressd
// bootstrap`; requests flow through renewals with none failing, and the
// xDS stream reconnects at most once.
func TestGatewayCredentialsFromSecret(t *testing.T) {
	skipShort(t)
	k := startKube(t)
	k.installIstioCRDs(t)
	k.kubectl(t, "create", "namespace", "egressd-system")
	k.kubectl(t, "create", "namespace", "e2e")
	k.kubectl(t, "apply", "-n", "egressd-system", "-f", "../deploy/base/secrets.yaml")
	web := upstreamHTTP(t, "web")
	k.applyYAML(t, staticEntry("web", "web.kube-xds.test", 80, "HTTP", web))

	g := startGateway(t, t.TempDir(), "--source", "kubernetes", "--kubeconfig", k.Kubeconfig, "--envoy", "external",
		"--xds-client-cert-ttl", "20s", "--no-envoy-access-log")
	var data map[string][]byte
	eventually(t, 60*time.Second, "the leader fills the Secret", func() error {
		data = k.secretData(t, "egressd-system", "egress-gateway-xds")
		if len(data["tls-certificate.yaml"]) == 0 || len(data["validation-context.yaml"]) == 0 {
			return fmt.Errorf("keys %v", slices.Sorted(maps.Keys(data)))
		}
		return nil
	})

	// The Secret volume, as the kubelet keeps it.
	mount := filepath.Join(t.TempDir(), "xds-credentials")
	if err := pemfile.WriteDir(mount, data); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	bootstrap, err := exec.Command(egressdBin, "bootstrap", "--xds-address", g.XDSAddr, "--xds-credentials-dir", mount,
		"--envoy-admin", admin, "--node-id", "kube-gw").Output()
	if err != nil {
		t.Fatalf("egressd bootstrap: %v", err)
	}
	bootstrapPath := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(bootstrapPath, bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	envoyLog, err := os.Create(filepath.Join(t.TempDir(), "envoy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer envoyLog.Close()
	gw := exec.Command(envoyBin, "-c", bootstrapPath, "--disable-hot-restart", "--log-level", "warn")
	gw.Stdout, gw.Stderr = envoyLog, envoyLog
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Process.Signal(syscall.SIGTERM); _ = gw.Wait() })
	eventually(t, 30*time.Second, "the gateway serves with the Secret's certificate", g.wantStatus("web.kube-xds.test", 200))

	// Renewals (every 10 s), copied into the volume as they come, while
	// requests flow.
	serial := func(d map[string][]byte) string { return string(d["tls.crt"]) }
	first := serial(data)
	var ok, failed atomic.Int64
	rotations := 0
	deadline := time.Now().Add(25 * time.Second)
	next := time.Now()
	for time.Now().Before(deadline) {
		if time.Now().After(next) {
			now := k.secretData(t, "egressd-system", "egress-gateway-xds")
			if serial(now) != serial(data) {
				rotations++
				data = now
				if err := pemfile.WriteDir(mount, data); err != nil {
					t.Fatal(err)
				}
			}
			next = time.Now().Add(time.Second)
		}
		if code, _, err := g.httpGet("web.kube-xds.test"); err != nil || code != 200 {
			failed.Add(1)
			t.Logf("request failed: %d %v", code, err)
		} else {
			ok.Add(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d requests, %d failed, %d rotations of the Secret", ok.Load()+failed.Load(), failed.Load(), rotations)
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if rotations < 2 || serial(data) == first {
		t.Errorf("the Secret was renewed %d times in 25 s of a 20 s certificate, want at least 2", rotations)
	}
	if n := strings.Count(g.Logs(), `"msg":"gateway connected"`); n > 2 {
		t.Errorf("the xDS stream connected %d times, want at most one reconnect", n)
	}
	want := credentialSerial(t, mount)
	eventually(t, 10*time.Second, "Envoy holds the renewed certificate", func() error {
		if !slices.Contains(adminSerials(t, admin), want) {
			return fmt.Errorf("Envoy does not hold %s", want)
		}
		return nil
	})
}
