package origination

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// systemCAFiles are the usual places of the system trust bundle, in the
// order they are tried (the list crypto/x509 uses on Linux).
var systemCAFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Alpine
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // OpenSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// systemCAFile returns the path of the system trust bundle: $SSL_CERT_FILE
// when set (as crypto/x509 honours it), else the first of systemCAFiles
// that exists.
func systemCAFile() (string, error) {
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		return f, nil
	}
	for _, f := range systemCAFiles {
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	return "", errors.New("no system CA bundle found (looked for " + strings.Join(systemCAFiles, ", ") +
		"); install ca-certificates, set SSL_CERT_FILE, or name caCertificates in the DestinationRule")
}

// SystemCA returns the system trust bundle, as read from its file: used
// when a SIMPLE or MUTUAL rule names no CA.
func SystemCA() ([]byte, error) {
	f, err := systemCAFile()
	if err != nil {
		return nil, err
	}
	b, err := readFile(f)
	if err != nil {
		return nil, fmt.Errorf("system CA bundle: %w", err)
	}
	return b, nil
}
