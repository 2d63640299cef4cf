package identity

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	var kb *pem.Block
	for _, b := range blocks {
		if !isKey(b) {
			continue
		}
		if kb != nil {
			return nil, fmt.Errorf("%s: more than one private key; keep exactly one", p)
		}
		kb = b
	}
	switch {
	case kb == nil:
		return nil, fmt.Errorf("%s: no PRIVATE KEY block", p)
	case kb.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(kb.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, fmt.Errorf("%s: the private key is encrypted; egressd needs it unencrypted (protect the file instead)", p)
	}
	var key any
	switch kb.Type {
	case blockPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported key block %q; use PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY", p, kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s block does not parse: %w", p, kb.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported private key type %T", p, key)
	}
	return signer, nil
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

// writeFileAtomic writes data to dir/name through a temporary file and a
// rename, so a reader sees the old content or the new, never a part.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
