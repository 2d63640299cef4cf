package xdsauth

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/credentials"

	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/internal/testkit"
)

func keeper(t *testing.T, ca *identity.CA, ns, sa string) *identity.Keeper {
	t.Helper()
	k, err := identity.NewKeeper(identity.KeeperConfig{CA: ca, Name: "test", Request: identity.Request{Namespace: ns, ServiceAccount: sa, DNSNames: []string{"localhost"}}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pair(t *testing.T, k *identity.Keeper) tls.Certificate {
	t.Helper()
	c := k.Current()
	p, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSigned is a certificate of no CA, naming id.
func selfSigned(t *testing.T, id string) tls.Certificate {
	t.Helper()
	return testkit.Issue(t, testkit.Spec{URIs: []string{id}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}).TLS()
}

// TestHandshake: only a mesh-CA certificate of a gateway identity gets
// through; every other client is refused with its reason, counted, and
// logged once per identity or address.
func TestHandshake(t *testing.T) {
	ca, err := identity.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.WarnLevel)
	creds, err := NewCredentials(ServerConfig{
		Certificate: keeper(t, ca, "egressd-system", "egressd"),
		Gateways:    []string{"spiffe://cluster.local/ns/egressd-system/sa/egress-gateway"},
		Log:         zap.New(core), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	gateway := pair(t, keeper(t, ca, "egressd-system", "egress-gateway"))
	workload := pair(t, keeper(t, ca, "default", "web"))
	forged := selfSigned(t, "spiffe://cluster.local/ns/egressd-system/sa/egress-gateway")
	present := func(c tls.Certificate) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }}
	}
	for _, tc := range []struct {
		name   string
		client func(net.Conn) error
		reason string // "" accepted
	}{
		{"gateway", func(c net.Conn) error { return tls.Client(c, present(gateway)).Handshake() }, ""},
		{"plaintext", func(c net.Conn) error { _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); return err }, ReasonPlaintext},
		{"no certificate", func(c net.Conn) error { return tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake() }, ReasonNoCertificate},
		{"another CA", func(c net.Conn) error { return tls.Client(c, present(forged)).Handshake() }, ReasonUntrusted},
		{"a workload", func(c net.Conn) error { return tls.Client(c, present(workload)).Handshake() }, ReasonNotAGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				_ = tc.client(c)
				_, _ = c.Read(make([]byte, 1)) // until the server closes
			}()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			before := testutil.ToFloat64(creds.rejected.WithLabelValues(tc.reason))
			conn, info, err := creds.ServerHandshake(raw)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id := info.(credentials.TLSInfo).SPIFFEID.String(); id != "spiffe://cluster.local/ns/egressd-system/sa/egress-gateway" {
					t.Errorf("identity %s", id)
				}
				conn.Close()
				return
			}
			raw.Close()
			if err == nil {
				t.Fatal("accepted")
			}
			if got := testutil.ToFloat64(creds.rejected.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("egressd_xds_rejected_clients_total{reason=%q} went from %v to %v (%v)", tc.reason, before, got, err)
			}
		})
	}
	// Logged once per reason and client, however often it comes back.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	for range 3 {
		go func() {
			c, _ := net.Dial("tcp", ln.Addr().String())
			_ = tls.Client(c, present(workload)).Handshake()
			c.Close()
		}()
		raw, _ := ln.Accept()
		_, _, _ = creds.ServerHandshake(raw)
		raw.Close()
	}
	if n := logs.FilterField(zap.String("client", "spiffe://cluster.local/ns/default/sa/web")).Len(); n != 1 {
		t.Errorf("%d log lines for one refused workload", n)
	}
}

// TestCredentialFiles: the files are SDS documents Envoy reads (checked
// with the real Envoy in egress/envoy) and PEM, key at mode 0600.
func TestCredentialFiles(t *testing.T) {
	ca, err := identity.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	c := keeper(t, ca, "egressd-system", "egress-gateway").Current()
	dir := filepath.Join(t.TempDir(), "creds")
	if err := WriteCredentials(dir, c); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(filepath.Join(dir, FileTLSCertificate))
	for _, want := range []string{"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", SecretClientCert, "BEGIN CERTIFICATE", "PRIVATE KEY"} {
		if !strings.Contains(string(cert), want) {
			t.Errorf("%s lacks %q", FileTLSCertificate, want)
		}
	}
	bundle, _ := os.ReadFile(filepath.Join(dir, FileValidationContext))
	if !strings.Contains(string(bundle), SecretTrustBundle) || strings.Contains(string(bundle), "PRIVATE KEY") {
		t.Errorf("%s: %s", FileValidationContext, bundle)
	}
	if fi, err := os.Stat(filepath.Join(dir, FileKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v %v", fi, err)
	}
	if s := c.String(); strings.Contains(s, "PRIVATE") || !strings.Contains(s, "spiffe://") {
		t.Errorf("String: %s", s)
	}
}
