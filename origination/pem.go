package origination

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/egressd/egressd/origination/pemfile"
)

// maxFileSize bounds what is read from one file; system bundles are a few
// hundred KiB.
const maxFileSize = 8 << 20

// readFile reads one PEM file, refusing anything larger than maxFileSize.
func readFile(p string) ([]byte, error) { return pemfile.ReadFile(p, maxFileSize) }

// readPEM reads and decodes one file; errors name the file.
func readPEM(p string) ([]*pem.Block, error) { return pemfile.Read(p, maxFileSize) }

// isKeyBlock reports whether a PEM block holds a private key of any kind.
func isKeyBlock(b *pem.Block) bool { return pemfile.IsKey(b) }

// loadChain reads a certificate chain. Only CERTIFICATE blocks are kept
// (re-encoded), so a file that also holds the key is accepted and the key
// never travels as part of the chain.
func loadChain(p string) ([]byte, []*x509.Certificate, error) {
	blocks, err := readPEM(p)
	if err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: PEM block %d: %w", p, i+1, err)
		}
		certs = append(certs, c)
		_ = pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes})
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s: no CERTIFICATE block", p)
	}
	return out.Bytes(), certs, nil
}

// loadKey reads the one private key of a file. Other blocks (certificates
// of a combined file, the "EC PARAMETERS" openssl writes) are ignored.
func loadKey(p string) ([]byte, crypto.Signer, error) {
	blocks, err := readPEM(p)
	if err != nil {
		return nil, nil, err
	}
	kb, signer, err := pemfile.Key(p, blocks)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: kb.Type, Bytes: kb.Bytes}), signer, nil
}

// loadCA reads a trusted CA bundle: certificates (and CRLs, which Envoy
// also reads from a trusted CA file), never a private key. Other blocks and
// text between blocks are dropped. In the system bundle, a certificate Go
// cannot parse is skipped rather than failing the whole bundle.
func loadCA(p string, system bool) ([]byte, error) {
	blocks, err := readPEM(p)
	if err != nil {
		return nil, err
	}
	for i, b := range blocks {
		if isKeyBlock(b) {
			return nil, fmt.Errorf("%s: PEM block %d is a private key (%s): a CA bundle must hold certificates only; remove the key from this file", p, i+1, b.Type)
		}
	}
	var out bytes.Buffer
	certs := 0
	for i, b := range blocks {
		switch b.Type {
		case "CERTIFICATE":
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				if system {
					continue
				}
				return nil, fmt.Errorf("%s: PEM block %d: %w", p, i+1, err)
			}
			certs++
		case "X509 CRL":
		default:
			continue
		}
		_ = pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes})
	}
	if certs == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE block; a CA bundle needs at least one certificate", p)
	}
	return out.Bytes(), nil
}
