package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/origination/pemfile"
)

// Files of the CA folder: Istio's plugged-in CA ("cacerts") layout.
const (
	FileCACert    = "ca-cert.pem"    // the signing certificate
	FileCAKey     = "ca-key.pem"     // its private key
	FileRootCert  = "root-cert.pem"  // the trust bundle: the root(s)
	FileCertChain = "cert-chain.pem" // ca-cert.pem and its issuers, up to the root
)

// layout lists the files of the CA folder, in the order errors name them.
var layout = []string{FileCACert, FileCAKey, FileRootCert, FileCertChain}

// ErrNoCA is returned (wrapped) by Load when the folder holds none of the
// CA files, or does not exist.
var ErrNoCA = errors.New("no CA: the folder holds none of " + strings.Join(layout, ", "))

// Lifetimes.
const (
	// DefaultTTL is the lifetime of an issued certificate unless asked
	// otherwise.
	DefaultTTL = 24 * time.Hour
	// rootLifetime is the lifetime of a root egressd creates.
	rootLifetime = 10 * 365 * 24 * time.Hour
	// backdate is how far before now a certificate starts, for clocks a
	// little behind.
	backdate = time.Minute
)

// CA is the trust domain's certificate authority: a signing certificate and
// its key, the chain up to the root, and the trust bundle. Its methods are
// safe for concurrent use; it never changes after Load.
type CA struct {
	trustDomain string
	dir         string
	cert        *x509.Certificate // ca-cert.pem: signs what Issue makes
	key         crypto.Signer     // ca-key.pem; never formatted
	chainPEM    []byte            // ca-cert.pem and its issuers, excluding roots
	bundlePEM   []byte            // root-cert.pem's certificates
	notAfter    time.Time         // the earliest NotAfter of the chain up to the root
	pluggedIn   bool
}

// LoadOrCreate opens the CA in dir for trustDomain (DefaultTrustDomain
// when empty). If dir holds Istio's plugged-in "cacerts" layout
// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), that CA is
// used: issued chains are the leaf and cert-chain.pem (without the roots),
// the bundle is root-cert.pem, so egressd can join an existing Istio mesh.
// If dir holds none of these files or does not exist, a self-signed root
// (ECDSA P-256, 10 years, CN "egressd CA <trust domain>", URI SAN
// spiffe://<trust domain>) is created and persisted there in the same
// layout (dir created 0700, ca-key.pem 0600), so a restart keeps the same
// CA. Only some of the files is an error naming the missing ones. See Load
// for the checks.
//
// Several processes must not create a CA in the same folder at once.
func LoadOrCreate(dir, trustDomain string) (*CA, error) {
	c, err := Load(dir, trustDomain)
	if !errors.Is(err, ErrNoCA) {
		return c, err
	}
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	if err := create(dir, trustDomain, time.Now()); err != nil {
		return nil, fmt.Errorf("creating a CA in %s: %w", dir, err)
	}
	return Load(dir, trustDomain)
}

// Load opens the CA in dir for trustDomain (DefaultTrustDomain when
// empty), as LoadOrCreate does, but never creates one: a folder without
// any CA file, or no folder, is an error wrapping ErrNoCA. It checks that
// ca-cert.pem's key is ca-key.pem; that ca-cert.pem is a CA certificate
// (basic constraints, key usage certSign); that cert-chain.pem, after
// ca-cert.pem, holds each certificate's issuer in turn; that ca-cert.pem
// verifies through cert-chain.pem to a root of root-cert.pem and is valid
// now; and that a CA naming a SPIFFE trust domain (a URI SAN
// "spiffe://<td>") names trustDomain.
func Load(dir, trustDomain string) (*CA, error) {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	if err := checkTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	var have, missing []string
	for _, name := range layout {
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err == nil:
			have = append(have, name)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, fmt.Errorf("CA folder: %w", err)
		}
	}
	switch {
	case len(have) == 0:
		return nil, fmt.Errorf("%s: %w", dir, ErrNoCA)
	case len(missing) > 0:
		return nil, fmt.Errorf("CA folder %s is incomplete: missing %s (found %s); Istio's cacerts layout needs all of %s: restore the missing files, or remove the folder to have a new CA created (certificates of the old one are then no longer trusted)",
			dir, strings.Join(missing, ", "), strings.Join(have, ", "), strings.Join(layout, ", "))
	}
	c, err := load(dir, trustDomain, time.Now())
	if err != nil {
		return nil, fmt.Errorf("CA folder %s: %w", dir, err)
	}
	return c, nil
}

// load reads and checks the four files of dir.
func load(dir, td string, now time.Time) (*CA, error) {
	path := func(name string) string { return filepath.Join(dir, name) }
	certs, err := readCerts(path(FileCACert), false)
	if err != nil {
		return nil, err
	}
	cert := certs[0] // Istio reads the first certificate too
	key, err := readKey(path(FileCAKey))
	if err != nil {
		return nil, err
	}
	roots, err := readCerts(path(FileRootCert), false)
	if err != nil {
		return nil, err
	}
	chain, err := readCerts(path(FileCertChain), false)
	if err != nil {
		return nil, err
	}

	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s is not the key of %s (subject %q); put the matching pair in the folder", FileCAKey, FileCACert, cert.Subject)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%s (subject %q) is not a CA certificate (basic constraints CA:TRUE missing)", FileCACert, cert.Subject)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s (subject %q) may not sign certificates (key usage keyCertSign missing)", FileCACert, cert.Subject)
	}
	if err := checkCATrustDomain(cert, td); err != nil {
		return nil, err
	}

	// The chain served after each leaf: ca-cert.pem, then its issuers from
	// cert-chain.pem, without the roots (which peers have in their bundle).
	isRoot := func(c *x509.Certificate) bool {
		return slices.ContainsFunc(roots, func(r *x509.Certificate) bool { return r.Equal(c) })
	}
	served := []*x509.Certificate{cert}
	for i, c := range chain {
		switch {
		case i == 0 && c.Equal(cert):
			continue
		case i == 0:
			return nil, fmt.Errorf("%s must start with %s (subject %q), then its issuers; it starts with subject %q", FileCertChain, FileCACert, cert.Subject, c.Subject)
		}
		served = append(served, c)
	}
	served = slices.DeleteFunc(served, isRoot)
	for i := 1; i < len(served); i++ {
		if err := served[i-1].CheckSignatureFrom(served[i]); err != nil {
			return nil, fmt.Errorf("%s: certificate %d (subject %q) is not the issuer of the one before it (subject %q); order the chain from %s up to the root",
				FileCertChain, i+1, served[i].Subject, served[i-1].Subject, FileCACert)
		}
	}

	if n := len(served); n > 0 && !slices.ContainsFunc(roots, func(r *x509.Certificate) bool { return served[n-1].CheckSignatureFrom(r) == nil }) {
		return nil, fmt.Errorf("the last certificate of the chain (subject %q, issuer %q) is not issued by a root of %s; complete %s up to the root",
			served[n-1].Subject, served[n-1].Issuer, FileRootCert, FileCertChain)
	}

	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range served[min(1, len(served)):] {
		inter.AddCert(c)
	}
	verified, err := cert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%s does not verify through %s to %s: %w", FileCACert, FileCertChain, FileRootCert, err)
	}
	notAfter := cert.NotAfter
	for _, c := range verified[0] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return &CA{
		trustDomain: td,
		dir:         dir,
		cert:        cert,
		key:         key,
		chainPEM:    encodeCerts(served...),
		bundlePEM:   encodeCerts(roots...),
		notAfter:    notAfter,
		pluggedIn:   !(isRoot(cert) && cert.Subject.CommonName == rootCommonName(td)),
	}, nil
}

// checkCATrustDomain refuses a CA certificate naming another SPIFFE trust
// domain than td. A CA naming none (Istio's usual) is accepted.
func checkCATrustDomain(cert *x509.Certificate, td string) error {
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || strings.Trim(u.Path, "/") != "" || u.Host == td {
			continue
		}
		return fmt.Errorf("%s is the CA of trust domain %q, not %q: use --trust-domain %s, or another CA folder", FileCACert, u.Host, td, u.Host)
	}
	return nil
}

// rootCommonName is the subject CN of the root egressd creates.
func rootCommonName(td string) string { return "egressd CA " + td }

// create makes a self-signed root for td and writes it to dir in the
// cacerts layout.
func create(dir, td string, now time.Time) error {
	if err := checkTrustDomain(td); err != nil {
		return fmt.Errorf("trust domain %q: %w", td, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: rootCommonName(td)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: td}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("signing the root: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := encodeCerts(&x509.Certificate{Raw: der})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The key first: an interrupted creation leaves a partial layout,
	// which Load reports, rather than certificates without their key.
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{FileCAKey, keyPEM, 0o600},
		{FileCACert, certPEM, 0o644},
		{FileCertChain, certPEM, 0o644},
		{FileRootCert, certPEM, 0o644},
	} {
		if err := pemfile.WriteFile(dir, f.name, f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// TrustDomain returns the trust domain the CA issues identities in.
func (c *CA) TrustDomain() string { return c.trustDomain }

// BundlePEM returns the trust bundle: the certificates of root-cert.pem,
// as PEM. Callers must not modify it.
func (c *CA) BundlePEM() []byte { return c.bundlePEM }

// PluggedIn reports whether the CA was found in the folder rather than
// created there by egressd: an Istio cacerts layout (root-cert.pem is then
// often another root than ca-cert.pem, which is an intermediate).
func (c *CA) PluggedIn() bool { return c.pluggedIn }

// NotAfter returns when the CA stops being able to issue: the earliest
// NotAfter of ca-cert.pem and its issuers up to the root. Issued
// certificates never outlive it.
func (c *CA) NotAfter() time.Time { return c.notAfter }

// String describes the CA without key material: its folder, trust domain,
// subject and expiry.
func (c *CA) String() string {
	kind := "created by egressd"
	if c.pluggedIn {
		kind = "plugged in"
	}
	return fmt.Sprintf("CA %s (%s, trust domain %s, subject %q, valid until %s)",
		c.dir, kind, c.trustDomain, c.cert.Subject.String(), c.notAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v prints no key material either.
func (c *CA) GoString() string { return c.String() }

// Issue makes a workload certificate for the identity ns/sa: a new ECDSA
// P-256 key; exactly one URI SAN, SPIFFEID(trust domain, ns, sa); DNS SANs
// only for dnsNames (canonicalized, see ValidateDNSName); extended key
// usage client and server auth; key usage digitalSignature and
// keyEncipherment; valid from a minute ago for ttl (DefaultTTL when <= 0),
// but never beyond the CA's NotAfter. It returns the chain as PEM (the
// leaf, then the CA chain up to but excluding the root) and the key as
// PKCS#8 PEM. ns must be a DNS-1123 label and sa a DNS-1123 subdomain.
func (c *CA) Issue(ns, sa string, ttl time.Duration, dnsNames ...string) (chainPEM, keyPEM []byte, err error) {
	chainPEM, keyPEM, _, err = c.issue(time.Now(), ns, sa, ttl, dnsNames...)
	return chainPEM, keyPEM, err
}

// IssueFor is Issue for a Request, which may also name IP addresses (IP
// SANs) for a server certificate.
func (c *CA) IssueFor(r Request) (chainPEM, keyPEM []byte, err error) {
	chainPEM, keyPEM, _, err = c.issueFor(time.Now(), r)
	return chainPEM, keyPEM, err
}

// issue is Issue at the time now; it also returns the leaf.
func (c *CA) issue(now time.Time, ns, sa string, ttl time.Duration, dnsNames ...string) (chainPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	return c.issueFor(now, Request{Namespace: ns, ServiceAccount: sa, TTL: ttl, DNSNames: dnsNames})
}

// issueFor is IssueFor at the time now; it also returns the leaf.
func (c *CA) issueFor(now time.Time, r Request) (chainPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	ns, sa, ttl := r.Namespace, r.ServiceAccount, r.TTL
	if err := ValidateIdentity(c.trustDomain, ns, sa); err != nil {
		return nil, nil, nil, err
	}
	var ips []net.IP
	for _, ip := range r.IPs {
		if !ip.IsValid() {
			return nil, nil, nil, errors.New("an invalid (zero) IP address")
		}
		ips = append(ips, ip.Unmap().AsSlice())
	}
	var dns []string
	for _, n := range r.DNSNames {
		n, err := ValidateDNSName(n)
		if err != nil {
			return nil, nil, nil, err
		}
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if !now.Before(c.notAfter) {
		return nil, nil, nil, fmt.Errorf("the CA expired at %s; renew it (%s and its chain in %s)", c.notAfter.UTC().Format(time.RFC3339), FileCACert, c.dir)
	}
	notAfter := now.Add(ttl)
	if notAfter.After(c.notAfter) {
		notAfter = c.notAfter
	}
	id, err := url.Parse(SPIFFEID(c.trustDomain, ns, sa))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("SPIFFE ID: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id},
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signing the certificate of %s: %w", SPIFFEID(c.trustDomain, ns, sa), err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	chainPEM = append(encodeCerts(leaf), c.chainPEM...)
	return chainPEM, keyPEM, leaf, nil
}
