package origination

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Source names where one piece of material comes from.
type Source struct {
	// CredentialName is resolved under the Store's CertDir as a folder
	// <CertDir>/<CredentialName>/. When set, the file paths are ignored.
	CredentialName string
	// CertFile, KeyFile and CAFile are absolute paths: the certificate
	// chain (leaf first), its private key, and the trusted CA bundle.
	CertFile, KeyFile, CAFile string
}

// Want selects what Load must find: a key pair, a CA bundle, or both.
type Want int

const (
	// WantKeyPair asks for a certificate chain and its private key.
	WantKeyPair Want = 1 << iota
	// WantCA asks for a trusted CA bundle.
	WantCA
)

// SystemCASecret is the SDS secret name of the system trust bundle, used
// for a CA source that names neither a credential nor a CA file.
const SystemCASecret = "egressd-ca/system"

const (
	clientPrefix = "egressd-client/"
	caPrefix     = "egressd-ca/"
)

// ClientSecretName returns the SDS secret name of a source's client key
// pair: "egressd-client/<credentialName>", or
// "egressd-client/file:<certFile>,<keyFile>". It is stable, unique per
// source, and built from names only, never from key material.
func ClientSecretName(src Source) string {
	if src.CredentialName != "" {
		return clientPrefix + src.CredentialName
	}
	return clientPrefix + "file:" + src.CertFile + "," + src.KeyFile
}

// CASecretName returns the SDS secret name of a source's CA bundle:
// "egressd-ca/<credentialName>", "egressd-ca/file:<caFile>", or
// SystemCASecret when the source has neither.
func CASecretName(src Source) string {
	switch {
	case src.CredentialName != "":
		return caPrefix + src.CredentialName
	case src.CAFile != "":
		return caPrefix + "file:" + src.CAFile
	default:
		return SystemCASecret
	}
}

// The file names of a credential folder, in the order they are looked for:
// a kubernetes.io/tls Secret's keys first, then Istio's generic Secret's.
var (
	certNames = []string{"tls.crt", "cert"}
	keyNames  = []string{"tls.key", "key"}
	caNames   = []string{"ca.crt", "cacert"}
)

// paths are the files Load reads for one source.
type paths struct {
	cert, key, ca string
	systemCA      bool // ca is the system trust bundle
}

// resolve finds the files of src that want needs.
func resolve(src Source, certDir string, want Want) (paths, error) {
	var p paths
	if src.CredentialName != "" {
		dir, err := credentialDir(certDir, src.CredentialName)
		if err != nil {
			return p, err
		}
		if want&WantKeyPair != 0 {
			if p.cert, err = firstExisting(src.CredentialName, dir, "certificate", certNames); err != nil {
				return p, err
			}
			if p.key, err = firstExisting(src.CredentialName, dir, "private key", keyNames); err != nil {
				return p, err
			}
		}
		if want&WantCA != 0 {
			if p.ca, err = firstExisting(src.CredentialName, dir, "CA bundle", caNames); err != nil {
				return p, err
			}
		}
		return p, nil
	}
	if want&WantKeyPair != 0 {
		if err := absolute("clientCertificate", src.CertFile); err != nil {
			return p, err
		}
		if err := absolute("privateKey", src.KeyFile); err != nil {
			return p, err
		}
		p.cert, p.key = src.CertFile, src.KeyFile
	}
	if want&WantCA != 0 {
		if src.CAFile == "" {
			f, err := systemCAFile()
			if err != nil {
				return p, err
			}
			p.ca, p.systemCA = f, true
		} else {
			if err := absolute("caCertificates", src.CAFile); err != nil {
				return p, err
			}
			p.ca = src.CAFile
		}
	}
	return p, nil
}

// credentialPath returns where the folder of a credential is under certDir.
func credentialPath(certDir, name string) (string, error) {
	if certDir == "" {
		return "", fmt.Errorf("credentialName %q: no certificate folder is set (--cert-dir); set it, or name the files with clientCertificate, privateKey and caCertificates", name)
	}
	if strings.ContainsAny(name, `/\`) || !filepath.IsLocal(name) {
		return "", fmt.Errorf("credentialName %q: must be a plain name (a Secret name), not a path", name)
	}
	return filepath.Join(certDir, name), nil
}

// credentialDir returns the folder of a credential, which must exist.
func credentialDir(certDir, name string) (string, error) {
	dir, err := credentialPath(certDir, name)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("credentialName %q: folder %s does not exist; it should hold %s or %s",
			name, dir, strings.Join([]string{certNames[0], keyNames[0], caNames[0]}, ", "),
			strings.Join([]string{certNames[1], keyNames[1], caNames[1]}, ", "))
	case err != nil:
		return "", fmt.Errorf("credentialName %q: %w", name, err)
	case !fi.IsDir():
		return "", fmt.Errorf("credentialName %q: %s is not a folder", name, dir)
	}
	return dir, nil
}

// firstExisting returns the first of names present in dir.
func firstExisting(cred, dir, what string, names []string) (string, error) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("credentialName %q: %w", cred, err)
		}
	}
	return "", fmt.Errorf("credentialName %q: no %s in %s: looked for %s (kubernetes.io/tls Secret) and %s (Istio generic Secret)",
		cred, what, dir, names[0], names[1])
}

// absolute checks that a DestinationRule file field is an absolute path.
func absolute(field, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is not set", field)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%s %q: must be an absolute path", field, p)
	}
	return nil
}
