package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/internal/testkit"
)

// kubeReadyTimeout bounds how long kube-apiserver may take to answer
// /readyz with "ok" (about 15 s is usual on 2 cores).
const kubeReadyTimeout = 90 * time.Second

// kubectlTimeout bounds one kubectl call.
const kubectlTimeout = 2 * time.Minute

// Kube is a real API server (with its own etcd) on loopback for one test.
// startKube starts it; t.Cleanup stops it.
type Kube struct {
	// Kubeconfig is the path of a kubeconfig for the admin user (group
	// system:masters), trusting the API server's self-signed serving cert.
	Kubeconfig string
	// Server is the API server's URL, https://127.0.0.1:<port>.
	Server string
	// Token is the admin's bearer token (static token file).
	Token string
	// Bin is the folder holding kube-apiserver and kubectl.
	Bin string
	// EtcdURL is the client URL of this test's etcd.
	EtcdURL string

	apiArgs   []string
	apiLog    string
	etcd      *kubeProc
	apiserver *kubeProc
}

// kubeProc is one child process whose output goes to a log file.
type kubeProc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// kubeBin returns the folder with kube-apiserver and kubectl: $KUBE_BIN,
// else the folder `make setup` wrote to .cache/kube-bin.
func kubeBin() (string, error) {
	dir := os.Getenv("KUBE_BIN")
	if dir == "" {
		cache := envoy.RepoCacheDir()
		if cache == "" {
			return "", errors.New("no repository root above the working folder")
		}
		b, err := os.ReadFile(filepath.Join(cache, "kube-bin"))
		if err != nil {
			return "", err
		}
		dir = strings.TrimSpace(string(b))
	}
	for _, name := range []string{"kube-apiserver", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("no executable %s in %s", name, dir)
		}
	}
	return dir, nil
}

// startKube starts etcd and kube-apiserver on free loopback ports, waits
// until the API server is ready and writes an admin kubeconfig. Both
// processes stop when the test ends.
func startKube(t *testing.T) *Kube {
	t.Helper()
	skipShort(t)
	bin, err := kubeBin()
	if err != nil {
		t.Fatalf("kube-apiserver and kubectl not found (%v): run make setup (or set KUBE_BIN)", err)
	}
	etcdPath, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd not found (%v): run make setup", err)
	}
	tmp := t.TempDir()
	k := &Kube{Bin: bin, Token: randomToken(t), apiLog: filepath.Join(tmp, "kube-apiserver.log")}

	// etcd: one member, plain HTTP on loopback, data in the test's folder.
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testkit.FreePort(t))
	k.EtcdURL = clientURL
	k.etcd = startKubeProc(t, "etcd", filepath.Join(tmp, "etcd.log"), etcdPath,
		"--name", "e2e",
		"--data-dir", filepath.Join(tmp, "etcd"),
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	)
	// Registered first, so it runs last: the API server stops before etcd.
	t.Cleanup(func() { k.etcd.stop(10 * time.Second) })
	t.Cleanup(func() {
		if k.apiserver != nil {
			k.apiserver.stop(20 * time.Second)
		}
		if t.Failed() {
			k.etcd.logTail(t, 40)
			if k.apiserver != nil {
				k.apiserver.logTail(t, 80)
			}
		}
	})
	waitEtcd(t, k.etcd, clientURL)

	// A throwaway service-account key pair and a static admin token.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(tmp, "sa.key")
	saPub := filepath.Join(tmp, "sa.pub")
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	writePEM(t, saPub, "PUBLIC KEY", pub)
	tokens := filepath.Join(tmp, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(k.Token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	port := testkit.FreePort(t)
	k.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
	certDir := filepath.Join(tmp, "apiserver-certs")
	k.apiArgs = []string{
		"--etcd-servers", clientURL,
		"--secure-port", fmt.Sprint(port),
		"--bind-address", "127.0.0.1",
		"--cert-dir", certDir,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
	}
	start := time.Now()
	k.startAPIServer(t)
	t.Logf("kube-apiserver ready at %s in %s", k.Server, time.Since(start).Round(time.Millisecond))

	// The kubeconfig trusts the serving cert the API server generated in
	// its cert dir (self-signed, names 127.0.0.1); a restart reuses it.
	crt, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	k.Kubeconfig = filepath.Join(tmp, "kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context:
    cluster: e2e
    user: admin
    namespace: default
current-context: e2e
`, k.Server, base64.StdEncoding.EncodeToString(crt), k.Token)
	if err := os.WriteFile(k.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// startAPIServer runs kube-apiserver with k.apiArgs and waits for /readyz.
func (k *Kube) startAPIServer(t *testing.T) {
	t.Helper()
	k.apiserver = startKubeProc(t, "kube-apiserver", k.apiLog, filepath.Join(k.Bin, "kube-apiserver"), k.apiArgs...)
	k.waitReady(t)
}

// stopAPIServer stops kube-apiserver (SIGTERM, SIGKILL after 20 s); etcd
// keeps running.
func (k *Kube) stopAPIServer(t *testing.T) {
	t.Helper()
	if k.apiserver == nil {
		t.Fatal("stopAPIServer: kube-apiserver is not running")
	}
	k.apiserver.stop(20 * time.Second)
	k.apiserver = nil
}

// restartAPIServer starts kube-apiserver again after stopAPIServer, with
// the same etcd, port, cert dir and keys, and waits for /readyz.
func (k *Kube) restartAPIServer(t *testing.T) {
	t.Helper()
	if k.apiserver != nil {
		k.stopAPIServer(t)
	}
	start := time.Now()
	k.startAPIServer(t)
	t.Logf("kube-apiserver ready again in %s", time.Since(start).Round(time.Millisecond))
}

// waitReady polls /readyz with the admin token until it answers "ok".
func (k *Kube) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			// Loopback only, and the cert is created by this very start.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
	p := k.apiserver
	deadline := time.Now().Add(kubeReadyTimeout)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.logTail(t, 80)
			t.Fatalf("kube-apiserver exited before it was ready: %v", p.cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, k.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				return
			}
			err = fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	p.logTail(t, 80)
	t.Fatalf("kube-apiserver not ready within %s: %v", kubeReadyTimeout, last)
}

// kubectl runs the built kubectl against this API server and returns its
// standard output; it fails the test on error.
func (k *Kube) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.kubectlErr(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// kubectlErr runs the built kubectl against this API server. It returns
// standard output; on failure the error carries the exit status and
// standard error.
func (k *Kube) kubectlErr(args ...string) (string, error) {
	return k.kubectlIn(nil, args...)
}

func (k *Kube) kubectlIn(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(k.Bin, "kubectl"), append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.Kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// applyYAML runs `kubectl apply -f -` with yaml on standard input.
func (k *Kube) applyYAML(t *testing.T, yaml string) {
	t.Helper()
	if _, err := k.kubectlIn(strings.NewReader(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, yaml)
	}
}

// installIstioCRDs applies the CRDs of the istio.io/api module this
// repository depends on and waits until they are Established.
func (k *Kube) installIstioCRDs(t *testing.T) {
	t.Helper()
	cache := envoy.RepoCacheDir()
	if cache == "" {
		t.Fatal("no repository root above the working folder")
	}
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	list.Dir = filepath.Dir(cache)
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -m istio.io/api: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	// Server-side apply: client-side apply would store each CRD whole in an
	// annotation, which is too large for some of them.
	start := time.Now()
	k.kubectl(t, "apply", "--server-side", "--field-manager", "egressd-e2e", "-f", crds)
	k.kubectl(t, "wait", "--for", "condition=Established", "--timeout", "60s", "-f", crds)
	t.Logf("Istio CRDs established in %s", time.Since(start).Round(time.Millisecond))
}

// startKubeProc starts a child with its output in logPath.
func startKubeProc(t *testing.T, name, logPath, path string, args ...string) *kubeProc {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p := &kubeProc{name: name, cmd: exec.Command(path, args...), log: logPath, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Its own process group, so a terminal's Ctrl-C reaches only the test.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return p
}

// stop ends the process with SIGTERM, then SIGKILL after grace, and waits.
func (p *kubeProc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail logs the last n lines of the process's output.
func (p *kubeProc) logTail(t *testing.T, n int) {
	t.Helper()
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("%s output (last %d lines):\n%s", p.name, len(lines), strings.Join(lines, "\n"))
}

// waitEtcd polls etcd's /health until it reports healthy.
func waitEtcd(t *testing.T, p *kubeProc, clientURL string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.logTail(t, 40)
			t.Fatalf("etcd exited: %v", p.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(clientURL + "/health")
		if err == nil {
			var h struct{ Health string }
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && h.Health == "true" {
				return
			}
			if err == nil {
				err = fmt.Errorf("health %q", h.Health)
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	p.logTail(t, 40)
	t.Fatalf("etcd not healthy within 30s: %v", last)
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKubeAPIServerServesIstioCRDs checks the Kubernetes harness itself: a
// real kube-apiserver on etcd serves Istio's CRDs, keeps a ServiceEntry
// across an API server restart, and answers an unknown token with 401.
func TestKubeAPIServerServesIstioCRDs(t *testing.T) {
	skipShort(t)
	k := startKube(t)

	if _, err := k.kubectlErr("--token", "not-the-token", "get", "namespaces"); err == nil || !strings.Contains(err.Error(), "must be logged in") {
		t.Fatalf("a wrong token: want kubectl's %q (401), got %v", "You must be logged in", err)
	}

	k.installIstioCRDs(t)
	k.applyYAML(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api-example
  namespace: default
spec:
  hosts:
  - api.example.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
`)

	type serviceEntry struct {
		Metadata struct {
			Name            string `json:"name"`
			UID             string `json:"uid"`
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Spec struct {
			Hosts []string `json:"hosts"`
			Ports []struct {
				Number   int    `json:"number"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
		} `json:"spec"`
	}
	read := func() serviceEntry {
		t.Helper()
		out := k.kubectl(t, "get", "serviceentries.networking.istio.io", "api-example", "-n", "default", "-o", "json")
		var se serviceEntry
		if err := json.Unmarshal([]byte(out), &se); err != nil {
			t.Fatalf("kubectl get -o json: %v\n%s", err, out)
		}
		return se
	}
	before := read()
	if got := before.Spec.Hosts; len(got) != 1 || got[0] != "api.example.com" {
		t.Fatalf("hosts = %q, want [api.example.com]", got)
	}
	if got := before.Spec.Ports; len(got) != 1 || got[0].Number != 443 || got[0].Protocol != "TLS" {
		t.Fatalf("ports = %+v, want one TLS port 443", got)
	}

	k.stopAPIServer(t)
	if _, err := k.kubectlErr("get", "serviceentries.networking.istio.io", "--request-timeout", "3s"); err == nil {
		t.Fatal("kubectl get succeeded with the API server stopped")
	}
	k.restartAPIServer(t)
	after := read()
	if after.Metadata.UID != before.Metadata.UID || after.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
		t.Fatalf("after restart: uid %s rv %s, want uid %s rv %s (the same object from etcd)",
			after.Metadata.UID, after.Metadata.ResourceVersion, before.Metadata.UID, before.Metadata.ResourceVersion)
	}
}
