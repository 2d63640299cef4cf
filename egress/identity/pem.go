package identity

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/egressd/egressd/origination/pemfile"
)

// maxFileSize bounds what is read from one file of the CA folder.
const maxFileSize = 1 << 20

// PEM block types written and read.
const (
	blockCert  = "CERTIFICATE"
	blockPKCS8 = "PRIVATE KEY"
)

// readBlocks reads the PEM blocks of a file. A block that starts but does
// not decode is an error rather than silently skipped.
func readBlocks(p string) ([]*pem.Block, error) { return pemfile.Read(p, maxFileSize) }

// isKey reports whether a PEM block holds a private key of any kind.
func isKey(b *pem.Block) bool { return pemfile.IsKey(b) }

// readCerts reads the certificates of a file, in order. A file meant to
// hold certificates only must not hold a private key.
func readCerts(p string, keyAllowed bool) ([]*x509.Certificate, error) {
	blocks, err := readBlocks(p)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for i, b := range blocks {
		switch {
		case isKey(b) && !keyAllowed:
			return nil, fmt.Errorf("%s: PEM block %d is a private key; this file must hold certificates only", p, i+1)
		case b.Type != blockCert:
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %w", p, i+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE block", p)
	}
	return certs, nil
}

// readKey reads the one private key of a file: PKCS#8, PKCS#1 (RSA) or
// SEC 1 (EC), unencrypted. Errors never hold key material.
func readKey(p string) (crypto.Signer, error) {
	blocks, err := readBlocks(p)
	if err != nil {
		return nil, err
	}
	_, signer, err := pemfile.Key(p, blocks)
	return signer, err
}

// encodeCerts encodes certificates as PEM, in order.
func encodeCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: blockCert, Bytes: c.Raw})
	}
	return b.Bytes()
}

// encodeKey encodes a private key as PKCS#8 PEM.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, errors.New("encoding the private key as PKCS#8 failed")
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockPKCS8, Bytes: der}), nil
}
