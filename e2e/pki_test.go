package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/egressd/egressd/internal/testkit"
)

// testCA is a certificate authority of the test's own (testkit's PKI).
type testCA struct {
	t testing.TB
	*testkit.Cert
	pem []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	ca := testkit.NewCA(t, name)
	return &testCA{t: t, Cert: ca, pem: ca.CertPEM()}
}

// issue signs a leaf for a server (dnsNames) or a client (commonName only).
// It returns the PEM certificate, the PEM key and the tls.Certificate.
func (ca *testCA) issue(commonName string, client bool, dnsNames ...string) (certPEM, keyPEM []byte, pair tls.Certificate) {
	ca.t.Helper()
	c := testkit.Issue(ca.t, testkit.Spec{CommonName: commonName, Parent: ca.Cert, DNSNames: dnsNames, ExtKeyUsage: usage(client)})
	return c.CertPEM(), c.KeyPEM(ca.t), c.TLS()
}

// issueSPIFFE signs a client certificate naming the SPIFFE ID id.
func (ca *testCA) issueSPIFFE(id string) tls.Certificate {
	ca.t.Helper()
	return testkit.Issue(ca.t, testkit.Spec{Parent: ca.Cert, URIs: []string{id}, ExtKeyUsage: usage(true)}).TLS()
}

// usage is a client's or a server's extended key usage.
func usage(client bool) []x509.ExtKeyUsage {
	if client {
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
}

// pool is a cert pool with the CA.
func (ca *testCA) pool() *x509.CertPool { return ca.Pool() }
