package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Spec describes a certificate to mint. Zero fields take the defaults
// noted.
type Spec struct {
	CommonName   string
	Organization string // default "egressd tests"
	// Parent signs the certificate; nil: self-signed.
	Parent *Cert
	// Key is the certificate's key; nil: a new ECDSA P-256 key.
	Key crypto.Signer
	// CA makes a CA certificate (basic constraints CA:TRUE).
	CA bool
	// OmitBasicConstraints leaves the basic constraints extension out
	// (a self-signed server certificate that is its own trust anchor).
	OmitBasicConstraints bool
	// KeyUsage and ExtKeyUsage override the defaults: a CA may sign
	// certificates and CRLs (and digital signatures); a leaf signs, for
	// clients and servers both.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// NotBefore (default an hour ago) and NotAfter (default a day on).
	NotBefore, NotAfter time.Time
	DNSNames            []string
	URIs                []string // e.g. SPIFFE IDs
	IPs                 []net.IP
}

// Cert is a minted certificate and its key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain are the certificates between it and its root, its own
	// first (the root left out), for TLS.
	Chain []*x509.Certificate
}

var serials atomic.Int64

// Issue mints a certificate as s describes.
func Issue(t testing.TB, s Spec) *Cert {
	t.Helper()
	if s.Key == nil {
		s.Key = ECKey(t, elliptic.P256())
	}
	if s.Organization == "" {
		s.Organization = "egressd tests"
	}
	if s.NotBefore.IsZero() {
		s.NotBefore = time.Now().Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: s.CommonName, Organization: []string{s.Organization}},
		NotBefore:             s.NotBefore,
		NotAfter:              s.NotAfter,
		BasicConstraintsValid: !s.OmitBasicConstraints,
		IsCA:                  s.CA,
		KeyUsage:              s.KeyUsage,
		ExtKeyUsage:           s.ExtKeyUsage,
		DNSNames:              s.DNSNames,
		IPAddresses:           s.IPs,
	}
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if s.CA {
			tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
	}
	if tmpl.ExtKeyUsage == nil && !s.CA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	for _, u := range s.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatalf("URI SAN %q: %v", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	parent, parentKey := tmpl, s.Key
	if s.Parent != nil {
		parent, parentKey = s.Parent.Cert, s.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, s.Key.Public(), parentKey)
	if err != nil {
		t.Fatalf("minting %q: %v", s.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	out := &Cert{Cert: c, Key: s.Key, Chain: []*x509.Certificate{c}}
	if s.Parent != nil && !isRoot(s.Parent.Cert) {
		out.Chain = append(out.Chain, s.Parent.Chain...)
	}
	return out
}

func isRoot(c *x509.Certificate) bool {
	return c.IsCA && string(c.RawIssuer) == string(c.RawSubject)
}

// NewCA mints a self-signed CA.
func NewCA(t testing.TB, name string) *Cert {
	t.Helper()
	return Issue(t, Spec{CommonName: name, CA: true, NotAfter: time.Now().Add(365 * 24 * time.Hour)})
}

// Leaf mints a leaf certificate signed by ca, for clients and servers, with
// DNS names.
func (ca *Cert) Leaf(t testing.TB, commonName string, dnsNames ...string) *Cert {
	t.Helper()
	return Issue(t, Spec{CommonName: commonName, Parent: ca, DNSNames: dnsNames})
}

// CertPEM is the certificate alone, PEM.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// ChainPEM is the certificate and its intermediates, PEM.
func (c *Cert) ChainPEM() []byte {
	var out []byte
	for _, x := range c.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	return out
}

// KeyPEM is the key, PKCS#8 PEM.
func (c *Cert) KeyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TLS is the certificate with its chain and key, for a tls.Config.
func (c *Cert) TLS() tls.Certificate {
	pair := tls.Certificate{PrivateKey: c.Key, Leaf: c.Cert}
	for _, x := range c.Chain {
		pair.Certificate = append(pair.Certificate, x.Raw)
	}
	return pair
}

// Pool is a pool of this (CA) certificate alone.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// PEMs concatenates the certificates, PEM, in order.
func PEMs(certs ...*Cert) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.CertPEM()...)
	}
	return out
}

// ECKey is a new ECDSA key on curve.
func ECKey(t testing.TB, curve elliptic.Curve) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rsa2048 is generated once per test binary: RSA key generation is slow,
// the more so under -race.
var rsa2048 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// RSAKey is an RSA key of bits; 2048-bit keys are one shared key.
func RSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	if bits == 2048 {
		return rsa2048()
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Ed25519Key is a new Ed25519 key.
func Ed25519Key(t testing.TB) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
