package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/internal/testkit"
)

var (
	egressdBin   string // built once in TestMain
	egressctlBin string
	envoyBin     string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// flag parsing happens in m.Run; testing.Short needs it first.
	if isShort() {
		return m.Run()
	}
	var err error
	envoyBin, err = envoy.Locate("", envoy.RepoCacheDir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no Envoy:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "egressd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	egressdBin = filepath.Join(dir, "egressd")
	egressctlBin = filepath.Join(dir, "egressctl")
	build := exec.Command("go", "build", "-o", dir, "github.com/egressd/egressd/cmd/egressd", "github.com/egressd/egressd/cmd/egressctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building egressd and egressctl:", err)
		return 1
	}
	return m.Run()
}

func isShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
}

// gatewayIP returns a loopback address of this test's own, so listeners of
// concurrent tests never collide (Linux answers on all of 127.0.0.0/8).
var ipMu sync.Mutex
var ipNext = 10

func gatewayIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	ipNext++
	return fmt.Sprintf("127.%d.%d.%d", 77, os.Getpid()%250+1, ipNext)
}

// Gateway is one running egressd (with its managed Envoy).
type Gateway struct {
	t          testing.TB
	ConfigDir  string
	RunDir     string
	AccessLog  string
	IP         string
	PortOffset int
	AdminAddr  string
	// EgressdAdmin is egressd's /metrics address; DNSAddr its DNS proxy;
	// XDSAddr its xDS port.
	EgressdAdmin string
	XDSAddr      string
	DNSAddr      string
	cmd          *exec.Cmd
	logPath      string // egressd's (and its Envoy's) output
	exited       chan struct{}
}

// startGateway runs egressd with a managed Envoy on a config folder.
func startGateway(t testing.TB, configDir string, extra ...string) *Gateway {
	t.Helper()
	return startGatewayOn(t, gatewayIP(), configDir, extra...)
}

// startGatewayOn is startGateway with the gateway on ip (from gatewayIP),
// for tests that must know its address before it starts.
func startGatewayOn(t testing.TB, ip, configDir string, extra ...string) *Gateway {
	t.Helper()
	tmp := t.TempDir()
	g := &Gateway{
		t:          t,
		ConfigDir:  configDir,
		RunDir:     filepath.Join(tmp, "run"),
		AccessLog:  filepath.Join(tmp, "access.log"),
		IP:         ip,
		PortOffset: 10000,
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		logPath:    filepath.Join(tmp, "egressd.log"),
		exited:     make(chan struct{}),
	}
	// A test may choose its own offset (0, as root, for service ports
	// that are also the listeners' ports).
	for i, a := range extra {
		if a == "--port-offset" && i+1 < len(extra) {
			g.PortOffset, _ = strconv.Atoi(extra[i+1])
		}
	}
	g.EgressdAdmin = net.JoinHostPort(g.IP, "15000")
	g.XDSAddr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	g.DNSAddr = net.JoinHostPort(g.IP, "15053")
	args := append([]string{"run",
		"--config", configDir,
		"--xds-listen", g.XDSAddr,
		"--envoy-admin", g.AdminAddr,
		"--admin-listen", g.EgressdAdmin,
		"--dns-listen", g.DNSAddr,
		"--run-dir", g.RunDir,
		"--gateway-address", g.IP,
		"--port-offset", strconv.Itoa(g.PortOffset),
		"--envoy-path", envoyBin,
		"--log-level", "debug",
	}, extra...)
	// The tests' "external" services listen on 127.0.0.1: the gateway may
	// connect there (loopback is blocked otherwise). Other loopback
	// addresses stay blocked, and a test that passes its own
	// --upstream-allow-cidrs decides for itself.
	if !slices.Contains(extra, "--upstream-allow-cidrs") {
		args = append(args, "--upstream-allow-cidrs", "127.0.0.1/32")
	}
	if !slices.Contains(extra, "--no-envoy-access-log") {
		args = append(args, "--access-log", g.AccessLog)
	} else {
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--no-envoy-access-log" })
	}
	g.cmd = exec.Command(egressdBin, args...)
	// A file, not a pipe: the managed Envoy inherits it and may outlive
	// egressd (fail closed), which would hold a pipe open forever.
	logFile, err := os.Create(g.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.Stop()
		g.killEnvoy()
		if t.Failed() {
			t.Logf("egressd output (without debug lines):\n%s", withoutDebug(g.Logs()))
			if b, err := os.ReadFile(g.AccessLog); err == nil {
				t.Logf("access log:\n%s", b)
			}
		}
	})
	return g
}

// allowUpstreams is the --upstream-allow-cidrs flag that lets the gateway
// connect to the tests' services on 127.0.0.1 (the default of
// startGateway) and on the loopback addresses ips.
func allowUpstreams(ips ...string) []string {
	ranges := []string{"127.0.0.1/32"}
	for _, ip := range ips {
		ranges = append(ranges, ip+"/32")
	}
	return []string{"--upstream-allow-cidrs", strings.Join(ranges, ",")}
}

// Stop ends egressd with SIGTERM (it stops its Envoy) and waits.
func (g *Gateway) Stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// Kill ends egressd with SIGKILL: no chance to stop its Envoy.
func (g *Gateway) Kill() {
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// EnvoyPID reads the managed Envoy's pid file.
func (g *Gateway) EnvoyPID() int {
	b, err := os.ReadFile(filepath.Join(g.RunDir, "envoy.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// killEnvoy makes sure no Envoy of this test outlives it.
func (g *Gateway) killEnvoy() {
	if pid := g.EnvoyPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Addr is the gateway's listener address for a service port.
func (g *Gateway) Addr(servicePort int) string {
	return net.JoinHostPort(g.IP, strconv.Itoa(servicePort+g.PortOffset))
}

// Logs returns what egressd (and Envoy) printed so far.
func (g *Gateway) Logs() string {
	b, _ := os.ReadFile(g.logPath)
	return string(b)
}

func withoutDebug(logs string) string {
	var keep []string
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, `"level":"debug"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// AccessLogLines returns the gateway's access log lines so far.
func (g *Gateway) AccessLogLines() []string {
	b, err := os.ReadFile(g.AccessLog)
	if err != nil {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// httpGet sends GET / for host through the gateway's port-80 listener.
func (g *Gateway) httpGet(host string) (int, string, error) {
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, g.Addr(80))
			},
		},
	}
	resp, err := client.Get("http://" + host + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// eventually polls cond every 50 ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < within {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not true within %s: %v", what, within, err)
	return 0
}

// wantStatus is a condition: host answers with the status through the gateway.
func (g *Gateway) wantStatus(host string, status int) func() error {
	return func() error {
		code, body, err := g.httpGet(host)
		if err != nil {
			return err
		}
		if code != status {
			return fmt.Errorf("status %d, body %q", code, body)
		}
		return nil
	}
}

// upstreamHTTP starts a plain HTTP server that names itself in every reply.
func upstreamHTTP(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (host %s)\n", name, r.Host)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// upstreamTLS starts an HTTPS server with a fresh self-signed certificate
// for the given names; it returns the port and the certificate.
func upstreamTLS(t *testing.T, names ...string) (int, *x509.Certificate) {
	t.Helper()
	return upstreamTLSOn(t, "127.0.0.1:0", names...)
}

// upstreamTLSOn is upstreamTLS on a given address.
func upstreamTLSOn(t *testing.T, addr string, names ...string) (int, *x509.Certificate) {
	t.Helper()
	leaf := testkit.Issue(t, testkit.Spec{CommonName: names[0], DNSNames: names, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, OmitBasicConstraints: true})
	cert := leaf.Cert
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over TLS from %s\n", r.TLS.ServerName)
	}))
	if addr != "127.0.0.1:0" {
		srv.Listener.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = ln
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, cert
}

// writeFile writes a config file atomically (rename), as editors and
// ConfigMap updates do.
func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// staticEntry is a ServiceEntry for host on a service port, served by a
// loopback upstream port.
func staticEntry(name, host string, servicePort int, protocol string, upstreamPort int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: e2e
spec:
  hosts: [%s]
  ports:
  - {number: %d, name: p, protocol: %s}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {p: %d}
`, name, host, servicePort, protocol, upstreamPort)
}

// upstreamEcho starts a TCP server that echoes what it reads.
func upstreamEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// tcpEcho sends a line to addr and expects it back.
func tcpEcho(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no echo: %w", err)
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// tlsClient runs a TLS handshake over raw with the given SNI, verifying the
// server against roots.
func tlsClient(raw net.Conn, sni string, roots *x509.CertPool) (*tls.Conn, error) {
	conn := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: roots})
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}
