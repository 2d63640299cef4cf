package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/origination/pemfile"
)

// Files "cert issue" writes into --out.
const (
	outCert = "cert.pem"
	outKey  = "key.pem"
	outRoot = "root-cert.pem"
)

// certCommand runs "egressctl cert SUBCOMMAND".
func certCommand(g *global, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("cert: missing subcommand; use: egressctl cert issue --ca-dir DIR --namespace NS --service-account SA --out DIR")
	}
	switch sub, args := args[0], args[1:]; sub {
	case "issue":
		return certIssueCommand(g, args, stdout, stderr)
	case "-h", "-help", "--help":
		fmt.Fprintln(stderr, "Usage: egressctl cert issue [flags]; see egressctl cert issue -h")
		return flag.ErrHelp
	default:
		return usagef("cert: unknown subcommand %q; use issue", sub)
	}
}

// stringList is a flag that may be repeated.
type stringList []string

var _ flag.Value = (*stringList)(nil)

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// certIssueFlags are the flags of "cert issue".
type certIssueFlags struct {
	caDir, trustDomain, namespace, serviceAccount, out string
	ttl                                                time.Duration
	dnsNames                                           stringList
}

func parseCertIssueFlags(g *global, args []string, stderr io.Writer) (*certIssueFlags, error) {
	f := &certIssueFlags{}
	fs := newFlagSet("cert issue", stderr)
	g.register(fs)
	fs.StringVar(&f.caDir, "ca-dir", "", "egressd's CA folder (Istio cacerts layout); never created here")
	fs.StringVar(&f.trustDomain, "trust-domain", identity.DefaultTrustDomain, "the mesh's trust domain")
	fs.StringVar(&f.namespace, "namespace", "", "the workload's namespace")
	fs.StringVar(&f.serviceAccount, "service-account", "", "the workload's service account")
	fs.DurationVar(&f.ttl, "ttl", identity.DefaultTTL, "lifetime of the certificate (at most the CA's)")
	fs.Var(&f.dnsNames, "dns-name", "a DNS name to add as a SAN; repeat for more")
	fs.StringVar(&f.out, "out", "", "folder to write "+outCert+", "+outKey+" (0600) and "+outRoot+" to")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	var missing []string
	for _, m := range []struct{ name, value string }{
		{"ca-dir", f.caDir}, {"namespace", f.namespace}, {"service-account", f.serviceAccount}, {"out", f.out},
	} {
		if m.value == "" {
			missing = append(missing, "--"+m.name)
		}
	}
	if len(missing) > 0 {
		return nil, usagef("cert issue: missing %s; see egressctl cert issue -h", strings.Join(missing, ", "))
	}
	if err := identity.ValidateIdentity(f.trustDomain, f.namespace, f.serviceAccount); err != nil {
		return nil, usagef("cert issue: %v", err)
	}
	for _, n := range f.dnsNames {
		if _, err := identity.ValidateDNSName(n); err != nil {
			return nil, usagef("cert issue: --dns-name: %v", err)
		}
	}
	if f.ttl <= 0 {
		return nil, usagef("cert issue: --ttl %s: use a positive duration such as 24h", f.ttl)
	}
	if sameDir(f.caDir, f.out) {
		return nil, usagef("cert issue: --out %s is the CA folder; write the certificate elsewhere", f.out)
	}
	return f, nil
}

// certIssueCommand issues a workload certificate from egressd's CA, read
// from its folder, and writes it with its key and the trust bundle.
func certIssueCommand(g *global, args []string, stdout, stderr io.Writer) error {
	f, err := parseCertIssueFlags(g, args, stderr)
	if err != nil {
		return err
	}
	ca, err := identity.Load(f.caDir, f.trustDomain)
	if errors.Is(err, identity.ErrNoCA) {
		return fmt.Errorf("no CA in %s: start egressd first (it creates its CA there), or point --ca-dir at egressd's CA folder", f.caDir)
	}
	if err != nil {
		return err
	}
	chain, key, err := ca.Issue(f.namespace, f.serviceAccount, f.ttl, f.dnsNames...)
	if err != nil {
		return err
	}
	leaf, err := firstCert(chain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o700); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{outKey, key, 0o600},
		{outCert, chain, 0o644},
		{outRoot, ca.BundlePEM(), 0o644},
	} {
		if err := pemfile.WriteFile(f.out, w.name, w.data, w.perm); err != nil {
			return err
		}
	}

	id := identity.SPIFFEID(ca.TrustDomain(), f.namespace, f.serviceAccount)
	left := time.Until(leaf.NotAfter).Round(time.Minute)
	fmt.Fprintf(stdout, "SPIFFE ID:  %s\n", id)
	fmt.Fprintf(stdout, "expires:    %s (in %s)\n", leaf.NotAfter.UTC().Format(time.RFC3339), left)
	for _, name := range []string{outCert, outKey, outRoot} {
		fmt.Fprintf(stdout, "wrote:      %s\n", filepath.Join(f.out, name))
	}
	if left < f.ttl-time.Minute {
		fmt.Fprintf(stderr, "egressctl: the certificate ends with the CA's validity, before --ttl %s\n", f.ttl)
	}
	return nil
}

// firstCert parses the first certificate of a PEM chain.
func firstCert(chain []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(chain)
	if b == nil {
		return nil, errors.New("issued chain holds no certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// sameDir reports whether two paths name the same folder.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
