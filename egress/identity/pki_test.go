package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// minted is a certificate made for a test, and its key.
type minted struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// caSpec describes a CA certificate to mint.
type caSpec struct {
	cn       string
	parent   *minted // nil: self-signed
	key      crypto.Signer
	notAfter time.Time // zero: in a year
	notCA    bool      // basic constraints CA:FALSE
	noSign   bool      // no keyCertSign
}

// mintCA mints a CA certificate as s describes (testkit's PKI).
func mintCA(t testing.TB, s caSpec) *minted {
	t.Helper()
	if s.notAfter.IsZero() {
		s.notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	spec := testkit.Spec{
		CommonName: s.cn, Organization: "Istio", Key: s.key, CA: !s.notCA, NotAfter: s.notAfter,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{},
	}
	if s.noSign {
		spec.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if s.parent != nil {
		spec.Parent = &testkit.Cert{Cert: s.parent.cert, Key: s.parent.key}
	}
	c := testkit.Issue(t, spec)
	return &minted{c.Cert, c.Key}
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func certsPEM(ms ...*minted) []byte {
	var out []byte
	for _, m := range ms {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.cert.Raw})...)
	}
	return out
}

// keyPEM encodes a key as Istio's tooling writes it: PKCS#1 for RSA, SEC 1
// for EC.
func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	t.Fatalf("key type %T", k)
	return nil
}

// istioLayout is a plugged-in CA: root -> intermediate.
type istioLayout struct {
	root, inter *minted
	dir         string
}

// writeIstioLayout writes Istio's cacerts for a root and an intermediate
// (RSA, as Istio's tooling makes them), with cert-chain.pem holding the
// intermediate and the root, as Istio's samples do.
func writeIstioLayout(t testing.TB) *istioLayout {
	t.Helper()
	root := mintCA(t, caSpec{cn: "Root CA", key: newRSAKey(t)})
	inter := mintCA(t, caSpec{cn: "Intermediate CA", parent: root, key: newRSAKey(t)})
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		FileCACert:    certsPEM(inter),
		FileCAKey:     keyPEM(t, inter.key),
		FileRootCert:  certsPEM(root),
		FileCertChain: certsPEM(inter, root),
	})
	return &istioLayout{root: root, inter: inter, dir: dir}
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// parseChain parses a PEM chain.
func parseChain(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			t.Fatalf("chain holds a %s block", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatal("empty chain")
	}
	return certs
}

// verifyClient verifies a chain as a client certificate against a bundle
// and returns the leaf.
func verifyClient(t testing.TB, chainPEM, bundlePEM []byte, at time.Time) *x509.Certificate {
	t.Helper()
	chain := parseChain(t, chainPEM)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundlePEM) {
		t.Fatal("bundle holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("issued chain does not verify: %v", err)
	}
	return chain[0]
}
