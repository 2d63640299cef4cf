package xds

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// TestRealEnvoyAcceptsEveryGoldenCase is a feature test: the real xDS
// server on loopback and a real Envoy. Each golden input is published in
// turn and must be ACKed: Envoy accepts everything Translate produces,
// including the parts protoc-gen-validate cannot check (CEL log filters,
// format strings, the DNS cache shared by filters and clusters).
func TestRealEnvoyAcceptsEveryGoldenCase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real Envoy")
	}
	// A loopback address of this test's own: the listener ports fall in
	// the ephemeral range, where 127.0.0.1 sockets of other tests live.
	listenIP := fmt.Sprintf("127.98.%d.%d", os.Getpid()%250+1, os.Getpid()/250%250+1)
	opts := Options{ListenAddress: listenIP, PortOffset: 30000 + uint32(os.Getpid()%2000), AccessLogPath: os.DevNull,
		ALSCluster: envoy.XDSClusterName, SummarizeAllowed: true, AllowedSample: 0.5, SecretNames: testSecretNames, Mesh: testMesh, OwnPorts: []uint32{15001},
		// On-demand clusters too: the e2e tests run the gateway without.
		ODCDSCluster: envoy.XDSClusterName,
		Guard:        goldenOptions("guard").Guard}
	// Every SDS secret a golden case names, with throwaway material, so
	// Envoy warms the origination clusters instead of waiting for them.
	e := startEnvoy(t, opts, zaptest.NewLogger(t), func() []*tlsv3.Secret { return throwawaySecrets(t) }, t.Fatal)
	defer e.stop()
	srv, ctx := e.srv, context.Background()

	inputs, _ := filepath.Glob("testdata/in/*.yaml")
	connected := false
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		if strings.HasSuffix(name, "allow-any") || strings.HasSuffix(name, "audit") {
			continue // one server, one mode; the mode's resources validate in the golden test
		}
		t.Run(name, func(t *testing.T) {
			version, err := srv.Update(ctx, compileFile(t, in))
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			defer wcancel()
			if err := srv.WaitAcked(wctx, version); err != nil {
				t.Fatal(err)
			}
			if r := srv.Rejected(); r != "" {
				t.Fatalf("Envoy rejected a configuration: %s", r)
			}
			connected = connected || srv.Connected()
		})
	}
	if !connected {
		t.Error("Connected() never reported the gateway's ADS stream")
	}
	// Every listener of the last case is really bound (no bind failures).
	if r := srv.Rejected(); r != "" {
		t.Fatal(r)
	}

	// The check can fail: a log filter whose CEL does not parse passes
	// ValidateAll but not Envoy, and WaitAcked must report the NACK.
	t.Run("rejection is reported", func(t *testing.T) {
		res, err := Translate(compileFile(t, "testdata/in/empty.yaml"), srv.opts)
		if err != nil {
			t.Fatal(err)
		}
		res.Listeners[1].DefaultFilterChain = nil
		res.Listeners[1].FilterChains = []*listenerv3.FilterChain{{
			Name:    "broken",
			Filters: []*listenerv3.Filter{tcpProxyFilter("broken", BlackholeCluster, tcpAccessLog(srv.opts, 443, tcpLog{layer: vocab.LayerTCP, filter: "this is not ( CEL"}), nil, nil)},
		}}
		version, err := srv.publish(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		err = srv.WaitAcked(wctx, version)
		if err == nil || !strings.Contains(err.Error(), "rejected") {
			t.Fatalf("WaitAcked = %v; want a rejection", err)
		}
		t.Logf("Envoy said: %v", err)

		// A good configuration after the bad one is ACKed again.
		version, err = srv.Update(ctx, compileFile(t, "testdata/in/http-static.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.WaitAcked(wctx, version); err != nil {
			t.Fatalf("good configuration after a rejected one: %v", err)
		}
	})
}

// testMesh turns the mesh listener on in the real-Envoy test.
var testMesh = &MeshOptions{CertSecret: "mesh/cert", BundleSecret: "mesh/bundle"}

// throwawaySecrets returns a client key pair and a CA secret for every SDS
// name the golden cases use: one self-signed certificate serves as both.
func throwawaySecrets(t *testing.T) []*tlsv3.Secret {
	t.Helper()
	self := testkit.NewCA(t, "golden")
	certPEM, keyPEM := self.CertPEM(), self.KeyPEM(t)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	var out []*tlsv3.Secret
	inputs, _ := filepath.Glob("testdata/in/*.yaml")
	seen := map[string]bool{}
	for _, in := range inputs {
		res, err := Translate(compileFile(t, in), Options{SecretNames: testSecretNames, Mesh: testMesh})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range res.SecretNames() {
			if seen[name] {
				continue
			}
			seen[name] = true
			sec := &tlsv3.Secret{Name: name}
			if strings.HasPrefix(name, "client/") || name == testMesh.CertSecret {
				sec.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}}
			} else {
				sec.Type = &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(certPEM)}}
			}
			out = append(out, sec)
		}
	}
	return out
}

// realEnvoy is an xDS server with one real Envoy connected to it.
type realEnvoy struct {
	srv   *Server
	admin string // Envoy's admin address
	pid   func() int
	stop  func()
}

// startEnvoy starts a Server with opts and secrets, and an Envoy
// connected to it. Without an Envoy binary it calls missing (tb.Fatal for
// tests, which must not pass without Envoy; tb.Skip for benchmarks).
func startEnvoy(tb testing.TB, opts Options, log *zap.Logger, secrets func() []*tlsv3.Secret, missing func(args ...any), bootstrapEdits ...func(*envoy.BootstrapConfig)) *realEnvoy {
	tb.Helper()
	bin, err := envoy.Locate("", envoy.RepoCacheDir())
	if err != nil {
		missing("no Envoy binary (make setup installs one): ", err)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := NewServer(log, opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv.SetSecrets(secrets)
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Start(ctx) }()
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	adminAddr := admin.Addr().String()
	admin.Close()
	bc := envoy.BootstrapConfig{XDSAddress: addr.String(), AdminAddress: adminAddr}
	for _, edit := range bootstrapEdits {
		edit(&bc)
	}
	bootstrap, err := envoy.BootstrapYAML(bc)
	if err != nil {
		tb.Fatal(err)
	}
	sup, err := envoy.NewSupervisor(envoy.SupervisorConfig{BinaryPath: bin, Bootstrap: bootstrap, RunDir: tb.TempDir(), Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = sup.Start(ctx); close(done) }()
	return &realEnvoy{srv: srv, admin: adminAddr, pid: sup.PID, stop: func() { cancel(); <-done }}
}
