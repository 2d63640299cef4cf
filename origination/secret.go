package origination

import (
	"crypto/sha256"
	"encoding/binary"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// clientSecret is the SDS resource of a client key pair: the chain and the
// key as inline bytes.
func clientSecret(name string, m *Material) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(m.CertChainPEM),
			PrivateKey:       inline(m.KeyPEM),
		}},
	}
}

// caSecret is the SDS resource of a CA bundle: a validation context
// trusting the bundle. Names to check are set on each cluster (egress/xds),
// which Envoy combines with this one.
func caSecret(name string, m *Material) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(m.CAPEM),
		}},
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// digest is a SHA-256 of the material's content: equal for equal bytes,
// and revealing nothing of the key.
func digest(m *Material) [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{m.CertChainPEM, m.KeyPEM, m.CAPEM} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
