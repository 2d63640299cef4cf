// Package pemfile reads PEM files strictly (bounded in size; a block that
// starts but does not decode is an error instead of being skipped as
// encoding/pem would; one unencrypted private key) and writes them
// atomically. The TLS material of origination, the mesh CA and egressctl
// use it.
package pemfile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"encoding/pem"
)

// ReadFile reads a file of at most max bytes.
func ReadFile(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d KiB; not a PEM certificate or key file", p, max>>10)
	}
	return b, nil
}

// Decode returns every PEM block of data. A block that starts but does not
// decode (bad base64, a missing or mismatched END line) is an error, and so
// is data without any block.
func Decode(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for rest := data; ; {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		blocks, rest = append(blocks, b), r
	}
	begins := bytes.Count(data, []byte("-----BEGIN "))
	switch {
	case begins > len(blocks):
		return nil, fmt.Errorf("malformed PEM: %d of %d blocks do not decode (bad base64, or a missing or mismatched END line)", begins-len(blocks), begins)
	case len(blocks) == 0:
		return nil, errors.New("no PEM block found (empty, or DER rather than PEM?)")
	}
	return blocks, nil
}

// Read reads and decodes one file of at most max bytes; errors name it.
func Read(p string, max int64) ([]*pem.Block, error) {
	data, err := ReadFile(p, max)
	if err != nil {
		return nil, err
	}
	blocks, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return blocks, nil
}

// IsKey reports whether a PEM block holds a private key of any kind.
func IsKey(b *pem.Block) bool { return strings.Contains(b.Type, "PRIVATE KEY") }

// Key returns the one private key among blocks read from file p, parsed:
// PKCS#8, PKCS#1 (RSA) or SEC 1 (EC), unencrypted, usable as a signer.
// It also returns the key's block. Errors name p and never hold key
// material.
func Key(p string, blocks []*pem.Block) (*pem.Block, crypto.Signer, error) {
	var kb *pem.Block
	n := 0
	for _, b := range blocks {
		if IsKey(b) {
			if n++; kb == nil {
				kb = b
			}
		}
	}
	switch {
	case n == 0:
		return nil, nil, fmt.Errorf("%s: no PRIVATE KEY block", p)
	case n > 1:
		return nil, nil, fmt.Errorf("%s: %d private keys; keep exactly one", p, n)
	case kb.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(kb.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, nil, fmt.Errorf("%s: the private key is encrypted; egressd needs it unencrypted (protect the file instead)", p)
	}
	var key any
	var err error
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		return nil, nil, fmt.Errorf("%s: unsupported key block %q; use PKCS#8 (PRIVATE KEY), RSA PRIVATE KEY or EC PRIVATE KEY", p, kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s block: %w", p, kb.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: unsupported private key type %T", p, key)
	}
	return kb, signer, nil
}

// WriteFile writes data to dir/name with mode perm through a temporary
// file and a rename, so a reader sees the old content or the new, never a
// part, and the file never exists with a wider mode.
func WriteFile(dir, name string, data []byte, perm os.FileMode) error {
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

// DataLink is the link in a folder WriteDir writes that names its current
// timestamped folder, as in the kubelet's Secret and ConfigMap volumes.
const DataLink = "..data"

// WriteDir lays files out in dir as the kubelet lays out a Secret volume,
// so that a reader watching dir (Envoy's watched_directory, the
// origination store) sees every file change at once: they are written
// (mode 0600) to a new timestamped folder, each visible name is a link
// through ..data, ..data is swapped to the new folder by a rename, then
// links of names no longer given and previous folders are removed. dir is
// created with mode 0700.
func WriteDir(dir string, files map[string][]byte) error {
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		if err := os.Remove(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(ts, k), v, 0o600); err != nil {
			_ = os.RemoveAll(ts)
			return err
		}
	}
	// The visible names, a link per file through ..data, are in place
	// before the swap, so that every file appears with it.
	for k := range files {
		p, target := filepath.Join(dir, k), filepath.Join(DataLink, k)
		if t, err := os.Readlink(p); err == nil && t == target {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = os.RemoveAll(ts)
			return err
		}
		if err := os.Symlink(target, p); err != nil {
			_ = os.RemoveAll(ts)
			return err
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		_ = os.RemoveAll(ts)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, DataLink)); err != nil {
		_ = os.Remove(tmp)
		_ = os.RemoveAll(ts)
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		p := filepath.Join(dir, n)
		switch {
		case e.IsDir() && strings.HasPrefix(n, "..") && n != filepath.Base(ts):
			// Previous timestamped folders, and leftovers of interrupted writes.
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		case e.Type()&os.ModeSymlink != 0 && n != DataLink:
			// Links of names no longer given.
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, DataLink+"/") {
				if _, ok := files[n]; !ok {
					if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
			}
		}
	}
	return nil
}
