package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsDial opens TLS through the gateway's port-443 listener with the given
// SNI ("" sends none) and verifies the upstream's certificate against roots.
func (g *Gateway) tlsDial(sni string, roots *x509.CertPool, verifyName string) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", g.Addr(443), 2*time.Second)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: sni, RootCAs: roots}
	if sni == "" {
		// Go sends no SNI when ServerName is empty; verify by hand then.
		cfg.InsecureSkipVerify = true
	}
	conn := tls.Client(raw, cfg)
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	if verifyName != "" {
		if err := conn.ConnectionState().PeerCertificates[0].VerifyHostname(verifyName); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// accessLogEntry waits for an access log line matching all fields.
func (g *Gateway) accessLogEntry(t *testing.T, want map[string]string) map[string]any {
	t.Helper()
	var found map[string]any
	eventually(t, 5*time.Second, fmt.Sprintf("access log line with %v", want), func() error {
		for _, line := range g.AccessLogLines() {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			ok := true
			for k, v := range want {
				if fmt.Sprint(m[k]) != v {
					ok = false
					break
				}
			}
			if ok {
				found = m
				return nil
			}
		}
		return errors.New("not logged yet")
	})
	return found
}

func TestGatewayEnforcesRegistryOnly(t *testing.T) {
	skipShort(t)
	webPort := upstreamHTTP(t, "web")
	tlsPort, tlsCert := upstreamTLS(t, "secure.allowed.test")
	roots := x509.NewCertPool()
	roots.AddCert(tlsCert)

	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.allowed.test", 80, "HTTP", webPort))
	writeFile(t, dir, "secure.yaml", staticEntry("secure", "secure.allowed.test", 443, "TLS", tlsPort))
	g := startGateway(t, dir)
	eventually(t, 30*time.Second, "gateway ready", g.wantStatus("web.allowed.test", 200))
	envoyPID := g.EnvoyPID()
	if envoyPID == 0 {
		t.Fatal("no envoy.pid in the run dir")
	}

	t.Run("allowed HTTP host reaches the upstream", func(t *testing.T) {
		code, body, err := g.httpGet("web.allowed.test")
		if err != nil || code != 200 || !strings.Contains(body, "hello from web (host web.allowed.test)") {
			t.Fatalf("got %d %q %v", code, body, err)
		}
		g.accessLogEntry(t, map[string]string{"layer": "http", "verdict": "allow", "host": "web.allowed.test", "status": "200", "serviceentry": "e2e/web"})
	})

	t.Run("unlisted HTTP host gets 403 that says why", func(t *testing.T) {
		code, body, err := g.httpGet("evil.example")
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusForbidden {
			t.Fatalf("status %d, want 403; body %q", code, body)
		}
		for _, want := range []string{"evil.example", "is not in the egress registry", "REGISTRY_ONLY", "port 80"} {
			if !strings.Contains(body, want) {
				t.Errorf("body %q lacks %q", body, want)
			}
		}
		g.accessLogEntry(t, map[string]string{"layer": "http", "verdict": "deny", "reason": "not_in_registry", "host": "evil.example", "status": "403"})
	})

	// Listed hosts have no virtual host of their own: the Host names the
	// cluster. Host names are case-insensitive and may carry the service
	// port; another port is another destination.
	t.Run("Host in any case and with the service port reaches the host; another port does not", func(t *testing.T) {
		for host, want := range map[string]int{"WEB.Allowed.Test": 200, "web.allowed.test:80": 200, "web.allowed.test:81": 403} {
			if code, body, err := g.httpGet(host); err != nil || code != want {
				t.Errorf("Host %q: got %d %q %v, want %d", host, code, body, err, want)
			}
		}
	})

	t.Run("allowed SNI gets the upstream's certificate", func(t *testing.T) {
		conn, err := g.tlsDial("secure.allowed.test", roots, "")
		if err != nil {
			t.Fatal(err)
		}
		// The certificate verified against the upstream's own root: the
		// gateway passed TLS through, it did not terminate it.
		if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(tlsCert) {
			conn.Close()
			t.Fatalf("peer certificate %s is not the upstream's", got.Subject)
		}
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: secure.allowed.test\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(conn)
		conn.Close() // the connection is logged when it ends
		if !strings.Contains(string(b), "hello over TLS from secure.allowed.test") {
			t.Fatalf("reply %q", b)
		}
		g.accessLogEntry(t, map[string]string{"layer": "tls", "verdict": "allow", "host": "secure.allowed.test", "serviceentry": "e2e/secure"})
	})

	t.Run("unlisted SNI is closed", func(t *testing.T) {
		start := time.Now()
		conn, err := g.tlsDial("evil.example", nil, "")
		if err == nil {
			conn.Close()
			t.Fatal("handshake with an unlisted SNI succeeded")
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("closing took %s; want at once", time.Since(start))
		}
		g.accessLogEntry(t, map[string]string{"layer": "tls", "verdict": "deny", "reason": "not_in_registry", "host": "evil.example"})
	})

	t.Run("TLS without SNI is closed", func(t *testing.T) {
		conn, err := g.tlsDial("", nil, "")
		if err == nil {
			conn.Close()
			t.Fatal("handshake without SNI succeeded")
		}
		g.accessLogEntry(t, map[string]string{"layer": "tls", "verdict": "deny", "reason": "no_sni"})
	})

	t.Run("added entry opens and removed entry closes within 2s", func(t *testing.T) {
		newPort := upstreamHTTP(t, "new")
		if err := g.wantStatus("new.allowed.test", 403)(); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "new.yaml", staticEntry("new", "new.allowed.test", 80, "HTTP", newPort))
		took := eventually(t, 2*time.Second, "added entry allowed", g.wantStatus("new.allowed.test", 200))
		t.Logf("added entry effective after %s", took)

		if err := os.Remove(filepath.Join(dir, "new.yaml")); err != nil {
			t.Fatal(err)
		}
		took = eventually(t, 2*time.Second, "removed entry denied", g.wantStatus("new.allowed.test", 403))
		t.Logf("removed entry denied after %s", took)
	})

	t.Run("invalid file is reported and the valid ones keep working", func(t *testing.T) {
		writeFile(t, dir, "broken.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: broken, namespace: e2e}
spec:
  hosts: ["*"]
  ports: [{number: 80, name: http, protocol: HTTP}]
---
`+staticEntry("beside-broken", "beside.allowed.test", 80, "HTTP", webPort))
		eventually(t, 2*time.Second, "beside-broken entry allowed", g.wantStatus("beside.allowed.test", 200))
		eventually(t, 2*time.Second, "problem logged", func() error {
			for _, line := range strings.Split(g.Logs(), "\n") {
				if strings.Contains(line, "invalid resource skipped") && strings.Contains(line, "broken.yaml") &&
					strings.Contains(line, "e2e/broken") && strings.Contains(line, "spec.hosts[0]") {
					return nil
				}
			}
			return errors.New("no log line names broken.yaml, e2e/broken and spec.hosts[0]")
		})
		for _, host := range []string{"web.allowed.test", "beside.allowed.test"} {
			if err := g.wantStatus(host, 200)(); err != nil {
				t.Errorf("%s: %v", host, err)
			}
		}
		if err := g.wantStatus("anything.example", 403)(); err != nil {
			t.Errorf("bare * must not open everything: %v", err)
		}
	})

	t.Run("TCP is routed by destination address", func(t *testing.T) {
		echo := upstreamEcho(t)
		// The gateway's own loopback IP stands for the partner's address:
		// a client connecting to it is what a redirected connection to
		// that address looks like to the gateway.
		writeFile(t, dir, "db.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: e2e}
spec:
  hosts: [db.partner.test]
  addresses: [%s/32]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {pg: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: elsewhere, namespace: e2e}
spec:
  hosts: [other.partner.test]
  addresses: [198.18.0.99/32]
  ports: [{number: 6000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, g.IP, echo, echo))
		eventually(t, 2*time.Second, "listed address echoes", func() error { return tcpEcho(g.Addr(5432)) })
		g.accessLogEntry(t, map[string]string{"layer": "tcp", "verdict": "allow", "serviceentry": "e2e/db", "port": "5432"})
		// Port 6000 is served, but only for 198.18.0.99: this destination is not listed.
		if err := tcpEcho(g.Addr(6000)); err == nil {
			t.Fatal("a connection to an unlisted address was proxied")
		}
		g.accessLogEntry(t, map[string]string{"layer": "tcp", "verdict": "deny", "reason": "not_in_registry", "port": "6000"})
	})

	if pid := g.EnvoyPID(); pid != envoyPID {
		t.Errorf("Envoy was restarted (pid %d -> %d); configuration changes must not restart it", envoyPID, pid)
	}
}

// TestGatewayFailsClosedWhenEgressdDies: SIGKILL egressd; Envoy keeps its
// last configuration, and nothing new is opened.
func TestGatewayFailsClosedWhenEgressdDies(t *testing.T) {
	skipShort(t)
	webPort := upstreamHTTP(t, "web")
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", staticEntry("web", "web.allowed.test", 80, "HTTP", webPort))
	g := startGateway(t, dir)
	eventually(t, 30*time.Second, "gateway ready", g.wantStatus("web.allowed.test", 200))
	envoyPID := g.EnvoyPID()

	g.Kill()
	if err := syscall.Kill(envoyPID, 0); err != nil {
		t.Fatalf("Envoy (pid %d) died with egressd: %v", envoyPID, err)
	}
	// The control plane is gone: a new entry cannot take effect.
	writeFile(t, dir, "late.yaml", staticEntry("late", "late.allowed.test", 80, "HTTP", webPort))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := g.wantStatus("web.allowed.test", 200)(); err != nil {
			t.Fatalf("allowed host broke after egressd died: %v", err)
		}
		if err := g.wantStatus("late.allowed.test", 403)(); err != nil {
			t.Fatalf("unlisted host not denied after egressd died: %v", err)
		}
		if err := g.wantStatus("evil.example", 403)(); err != nil {
			t.Fatalf("unlisted host not denied after egressd died: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
