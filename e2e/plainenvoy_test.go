package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// plainEnvoy is the baseline of the gateway benchmarks: an Envoy from a
// minimal static configuration that does the same routing as the gateway
// and nothing else (no access log, no header strip, no guard, no stats
// trimming): HTTP by Host to one static cluster, TLS passed through by
// SNI to another.
type plainEnvoy struct {
	httpAddr, tlsAddr string
	pid               int
}

// startPlainEnvoy runs the baseline Envoy until the benchmark ends.
func startPlainEnvoy(b *testing.B, webHost string, webPort int, secureHost string, tlsPort int) *plainEnvoy {
	b.Helper()
	httpPort, tlsListen, admin := testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b)
	config := fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain_http
          route_config:
            virtual_hosts:
            - name: web
              domains: [%[3]q]
              routes:
              - match: {prefix: /}
                route: {cluster: web, timeout: 0s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: tls
    address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector
    filter_chains:
    - filter_chain_match: {server_names: [%[5]q], transport_protocol: tls}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: plain_tls
          cluster: secure
  clusters:
  - name: web
    type: STATIC
    load_assignment:
      cluster_name: web
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[6]d}}}}]}]
  - name: secure
    type: STATIC
    load_assignment:
      cluster_name: secure
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[7]d}}}}]}]
`, admin, httpPort, webHost, tlsListen, secureHost, webPort, tlsPort)
	dir := b.TempDir()
	path := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, envoyBin, "-c", path, "--log-level", "warn", "--disable-hot-restart",
		"--base-id", strconv.Itoa(int(time.Now().UnixNano()%100000)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	p := &plainEnvoy{httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)), tlsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsListen)), pid: cmd.Process.Pid}
	eventually(b, 30*time.Second, "plain Envoy listening", func() error {
		for _, addr := range []string{p.httpAddr, p.tlsAddr} {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
	return p
}
