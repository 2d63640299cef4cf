package origination

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"
)

var (
	// ErrExpired is wrapped by Load's error when a certificate of the chain
	// is past its NotAfter.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid is wrapped by Load's error when a certificate of the
	// chain is before its NotBefore.
	ErrNotYetValid = errors.New("certificate is not valid yet")
)

// minRSABits is the smallest RSA key Envoy (BoringSSL) takes for a client
// certificate.
const minRSABits = 2048

// checkKeyType accepts the key types Envoy supports for client
// certificates: RSA of at least 2048 bits, ECDSA P-256 or P-384.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= minRSABits {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
	}
	return fmt.Errorf("unsupported key type %s: Envoy takes client certificates with RSA keys of at least %d bits, or ECDSA P-256 or P-384", keyTypeName(pub), minRSABits)
}

// keyTypeName names a public or private key's type and size for errors.
func keyTypeName(k any) string {
	if s, ok := k.(crypto.Signer); ok {
		k = s.Public()
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RSA " + strconv.Itoa(k.N.BitLen()) + "-bit"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", k)
	}
}

// checkKeyMatch checks that key belongs to the leaf, chain[0]. When it
// belongs to a later certificate, the chain is out of order, and the error
// says so.
func checkKeyMatch(key crypto.Signer, chain []*x509.Certificate) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return fmt.Errorf("unsupported private key type %s", keyTypeName(key))
	}
	if pub.Equal(chain[0].PublicKey) {
		return nil
	}
	for i, c := range chain[1:] {
		if pub.Equal(c.PublicKey) {
			return fmt.Errorf("the private key belongs to certificate %d (%s), not the first: list the chain leaf first", i+2, certName(c))
		}
	}
	return fmt.Errorf("the private key does not match the certificate %s", certName(chain[0]))
}

// checkChainOrder checks that each certificate is signed by the next one.
func checkChainOrder(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d (%s) is not signed by certificate %d (%s): list the chain in order, leaf first, each certificate followed by its issuer: %w",
				i+1, certName(chain[i]), i+2, certName(chain[i+1]), err)
		}
	}
	return nil
}

// checkValidity checks that now is within every certificate's validity.
func checkValidity(chain []*x509.Certificate, now time.Time) error {
	for i, c := range chain {
		switch {
		case now.Before(c.NotBefore):
			return fmt.Errorf("%w: certificate %d (%s) is not valid before %s (now %s)",
				ErrNotYetValid, i+1, certName(c), c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		case now.After(c.NotAfter):
			return fmt.Errorf("%w: certificate %d (%s) is not valid after %s (now %s)",
				ErrExpired, i+1, certName(c), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// certName names a certificate in errors: its subject, else its serial.
func certName(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return strconv.Quote(s)
	}
	return "serial " + c.SerialNumber.String()
}
