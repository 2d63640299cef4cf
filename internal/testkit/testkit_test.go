package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestIssueChain: a root, an intermediate and a leaf verify as a chain,
// for the names and usages asked, and as a TLS pair.
func TestIssueChain(t *testing.T) {
	root := NewCA(t, "root")
	inter := Issue(t, Spec{CommonName: "intermediate", CA: true, Parent: root})
	leaf := Issue(t, Spec{CommonName: "leaf", Parent: inter, DNSNames: []string{"a.example.com"},
		URIs: []string{"spiffe://cluster.local/ns/a/sa/b"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if len(leaf.Chain) != 2 || leaf.Chain[1] != inter.Cert {
		t.Fatalf("chain %v", leaf.Chain)
	}
	pool := x509.NewCertPool()
	pool.AddCert(inter.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: pool, DNSName: "a.example.com", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
	if leaf.Cert.URIs[0].String() != "spiffe://cluster.local/ns/a/sa/b" || !leaf.Cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("SANs %v %v", leaf.Cert.URIs, leaf.Cert.IPAddresses)
	}
	if _, err := tls.X509KeyPair(leaf.ChainPEM(), leaf.KeyPEM(t)); err != nil {
		t.Errorf("PEM pair: %v", err)
	}
	if pair := leaf.TLS(); len(pair.Certificate) != 2 {
		t.Errorf("TLS chain of %d", len(pair.Certificate))
	}
	expired := Issue(t, Spec{Parent: root, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if _, err := expired.Cert.Verify(x509.VerifyOptions{Roots: root.Pool()}); err == nil {
		t.Error("an expired certificate verified")
	}
	other := NewCA(t, "other")
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool(), Intermediates: pool}); err == nil {
		t.Error("a leaf verified against another root")
	}
}

func TestGolden(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("same\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := NewGolden(dir)
	g.Check(t, "a.txt", []byte("same\n"))
	if len(g.produced) != 1 {
		t.Errorf("produced %v", g.produced)
	}
	if in := Inputs(t, filepath.Join(dir, "*.txt")); len(in) != 1 || in[0].Name != "a" || string(in[0].Data) != "same\n" {
		t.Errorf("Inputs = %+v", in)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d was not free: %v", p, err)
	}
	ln.Close()
}
