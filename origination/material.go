package origination

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// Material is loaded, checked TLS material. Its String, Format, GoString,
// MarshalJSON and MarshalLogObject never reveal the private key.
type Material struct {
	CertChainPEM []byte // certificate chain, PEM, leaf first; nil without a key pair
	KeyPEM       []byte // private key, PEM; never logged
	CAPEM        []byte // trusted CA bundle, PEM; may be nil

	// Leaf is the first certificate of CertChainPEM; nil without a key pair.
	Leaf *x509.Certificate
	// NotBefore and NotAfter are the leaf's validity period.
	NotBefore, NotAfter time.Time
}

const redacted = "[REDACTED]"

// String describes the material without its key.
func (m Material) String() string {
	var parts []string
	if m.Leaf != nil {
		parts = append(parts,
			"subject="+strconv.Quote(m.Leaf.Subject.String()),
			"issuer="+strconv.Quote(m.Leaf.Issuer.String()),
			"notBefore="+m.NotBefore.UTC().Format(time.RFC3339),
			"notAfter="+m.NotAfter.UTC().Format(time.RFC3339))
	}
	if m.CertChainPEM != nil {
		parts = append(parts, "chain="+plural(countCerts(m.CertChainPEM), "certificate"))
	}
	if m.KeyPEM != nil {
		parts = append(parts, "key="+redacted)
	}
	if m.CAPEM != nil {
		parts = append(parts, "ca="+plural(countCerts(m.CAPEM), "certificate"))
	}
	return "origination.Material{" + strings.Join(parts, ", ") + "}"
}

// GoString is String, so %#v does not print the key either.
func (m Material) GoString() string { return m.String() }

// Format prints String for every verb (%v, %+v, %#v, %s, %x...), quoted
// for %q, so no verb reaches the key bytes.
func (m Material) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(m.String()))
		return
	}
	_, _ = io.WriteString(f, m.String())
}

// materialJSON is what MarshalJSON and MarshalLogObject show.
type materialJSON struct {
	Subject    string     `json:"subject,omitempty"`
	Issuer     string     `json:"issuer,omitempty"`
	NotBefore  *time.Time `json:"notBefore,omitempty"`
	NotAfter   *time.Time `json:"notAfter,omitempty"`
	ChainCerts int        `json:"chainCertificates,omitempty"`
	PrivateKey string     `json:"privateKey,omitempty"`
	CACerts    int        `json:"caCertificates,omitempty"`
}

func (m Material) summary() materialJSON {
	var j materialJSON
	if m.Leaf != nil {
		nb, na := m.NotBefore.UTC(), m.NotAfter.UTC()
		j.Subject, j.Issuer = m.Leaf.Subject.String(), m.Leaf.Issuer.String()
		j.NotBefore, j.NotAfter = &nb, &na
	}
	j.ChainCerts = countCerts(m.CertChainPEM)
	if m.KeyPEM != nil {
		j.PrivateKey = redacted
	}
	j.CACerts = countCerts(m.CAPEM)
	return j
}

// MarshalJSON describes the material without its key.
func (m Material) MarshalJSON() ([]byte, error) { return json.Marshal(m.summary()) }

// MarshalLogObject describes the material to zap without its key.
func (m Material) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	j := m.summary()
	if j.Subject != "" {
		enc.AddString("subject", j.Subject)
		enc.AddString("issuer", j.Issuer)
		enc.AddTime("not_before", *j.NotBefore)
		enc.AddTime("not_after", *j.NotAfter)
	}
	if j.ChainCerts > 0 {
		enc.AddInt("chain_certificates", j.ChainCerts)
	}
	if j.PrivateKey != "" {
		enc.AddString("private_key", j.PrivateKey)
	}
	if j.CACerts > 0 {
		enc.AddInt("ca_certificates", j.CACerts)
	}
	return nil
}

// countCerts counts the CERTIFICATE blocks of canonical PEM.
func countCerts(b []byte) int {
	return bytes.Count(b, []byte("-----BEGIN CERTIFICATE-----"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
