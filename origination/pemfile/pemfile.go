// Package pemfile reads PEM files strictly: bounded in size, and a block
// that starts but does not decode is an error instead of being skipped as
// encoding/pem would. The TLS material of origination and the mesh CA both
// read their files with it.
package pemfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
