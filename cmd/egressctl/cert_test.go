package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/identity"
)

// newCADir makes a CA as egressd would and returns its folder.
func newCADir(t *testing.T, trustDomain string) (string, *identity.CA) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := identity.LoadOrCreate(dir, trustDomain)
	if err != nil {
		t.Fatal(err)
	}
	return dir, ca
}

// readTree reads the files of dir, name -> content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return certs
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}

func TestCertIssue(t *testing.T) {
	caDir, ca := newCADir(t, "example.org")
	before := readTree(t, caDir)
	out := filepath.Join(t.TempDir(), "vm1", "certs")

	start := time.Now()
	got := runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--trust-domain", "example.org",
		"--namespace", "vms", "--service-account", "billing", "--ttl", "2h",
		"--dns-name", "Billing.VMs.example.org", "--dns-name", "billing", "--out", out)
	if got.code != 0 {
		t.Fatalf("exit %d, stderr %q", got.code, got.stderr)
	}
	if got.stderr != "" {
		t.Errorf("stderr %q", got.stderr)
	}
	for _, want := range []string{
		"SPIFFE ID:  spiffe://example.org/ns/vms/sa/billing\n",
		"expires:    ", "(in 2h0m0s)\n",
		"wrote:      " + filepath.Join(out, "cert.pem") + "\n",
		"wrote:      " + filepath.Join(out, "key.pem") + "\n",
		"wrote:      " + filepath.Join(out, "root-cert.pem") + "\n",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("stdout %q\nwant it to contain %q", got.stdout, want)
		}
	}

	files := readTree(t, out)
	if names := slices.Sorted(mapsKeys(files)); !slices.Equal(names, []string{"cert.pem", "key.pem", "root-cert.pem"}) {
		t.Fatalf("files %v", names)
	}
	if fi, _ := os.Stat(filepath.Join(out, "key.pem")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", fi.Mode().Perm())
	}
	if files["root-cert.pem"] != string(ca.BundlePEM()) {
		t.Error("root-cert.pem is not the CA's bundle")
	}

	chain := pemCerts(t, []byte(files["cert.pem"]))
	if len(chain) != 1 {
		t.Fatalf("chain of %d certificates from egressd's root CA; want the leaf", len(chain))
	}
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(files["root-cert.pem"]))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify with root-cert.pem: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/ns/vms/sa/billing" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	if !slices.Equal(leaf.DNSNames, []string{"billing.vms.example.org", "billing"}) {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	if d := leaf.NotAfter.Sub(start); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("lifetime %v, want 2h", d)
	}
	blk, _ := pem.Decode([]byte(files["key.pem"]))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatal("key.pem: want a PKCS#8 PRIVATE KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if signer, ok := key.(crypto.Signer); !ok || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Error("key.pem does not match cert.pem")
	}
	if strings.Contains(got.stdout, "PRIVATE KEY") {
		t.Error("key printed")
	}

	// The CA folder is read, never written.
	if after := readTree(t, caDir); len(after) != len(before) {
		t.Errorf("CA folder changed: %d files, was %d", len(after), len(before))
	} else {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("CA folder: %s changed", k)
			}
		}
	}

	// Again into the same folder: replaced, key still 0600.
	got = runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--trust-domain", "example.org",
		"--namespace", "vms", "--service-account", "billing", "--out", out)
	if got.code != 0 {
		t.Fatalf("second issue: exit %d, stderr %q", got.code, got.stderr)
	}
	again := readTree(t, out)
	if len(again) != 3 || again["cert.pem"] == files["cert.pem"] || again["key.pem"] == files["key.pem"] {
		t.Error("second issue did not replace the certificate and key")
	}
	if fi, _ := os.Stat(filepath.Join(out, "key.pem")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v after replacing, want 0600", fi.Mode().Perm())
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestCertIssueNoCA(t *testing.T) {
	for name, caDir := range map[string]string{
		"missing folder": filepath.Join(t.TempDir(), "nope"),
		"empty folder":   t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			got := runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--namespace", "default",
				"--service-account", "sleep", "--out", out)
			want := "egressctl: no CA in " + caDir + ": start egressd first (it creates its CA there), or point --ca-dir at egressd's CA folder\n"
			if got.code != 1 || got.stderr != want || got.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", got.code, got.stdout, got.stderr, want)
			}
			// No CA created, nothing written.
			if entries, _ := os.ReadDir(caDir); len(entries) != 0 {
				t.Errorf("%d files in the CA folder", len(entries))
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("--out created: %v", err)
			}
		})
	}
}

func TestCertIssueCAErrors(t *testing.T) {
	caDir, _ := newCADir(t, "")
	os.Remove(filepath.Join(caDir, identity.FileRootCert))
	got := runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--namespace", "a", "--service-account", "b", "--out", t.TempDir())
	if got.code != 1 || !strings.Contains(got.stderr, "is incomplete: missing root-cert.pem") {
		t.Errorf("partial CA: exit %d, stderr %q", got.code, got.stderr)
	}

	caDir, _ = newCADir(t, "one.example")
	got = runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--namespace", "a", "--service-account", "b", "--out", t.TempDir())
	if got.code != 1 || !strings.Contains(got.stderr, `the CA of trust domain "one.example", not "cluster.local": use --trust-domain one.example`) {
		t.Errorf("trust domain: exit %d, stderr %q", got.code, got.stderr)
	}
}

func TestCertUsage(t *testing.T) {
	caDir, _ := newCADir(t, "")
	ok := []string{"--ca-dir", caDir, "--namespace", "default", "--service-account", "sleep", "--out", filepath.Join(t.TempDir(), "out")}
	without := func(flag string) []string {
		i := slices.Index(ok, flag)
		return append(append([]string{"cert", "issue"}, ok[:i]...), ok[i+2:]...)
	}
	with := func(extra ...string) []string { return append(append([]string{"cert", "issue"}, ok...), extra...) }
	tests := map[string]struct {
		args   []string
		code   int
		stderr string // substring
	}{
		"no flags":           {[]string{"cert", "issue"}, 2, "egressctl: cert issue: missing --ca-dir, --namespace, --service-account, --out; see egressctl cert issue -h\n"},
		"no ca-dir":          {without("--ca-dir"), 2, "cert issue: missing --ca-dir;"},
		"no namespace":       {without("--namespace"), 2, "cert issue: missing --namespace;"},
		"no service account": {without("--service-account"), 2, "cert issue: missing --service-account;"},
		"no out":             {without("--out"), 2, "cert issue: missing --out;"},
		"bad namespace":      {with("--namespace", "Default"), 2, `namespace "Default": character 'D' (did you mean "default"?)`},
		"bad sa":             {with("--service-account", "my_sa"), 2, `service account "my_sa": character '_'`},
		"bad trust domain":   {with("--trust-domain", "spiffe://x"), 2, `trust domain "spiffe://x": a name, not a URI: use "x"`},
		"bad dns name":       {with("--dns-name", "10.1.2.3"), 2, `--dns-name: DNS name "10.1.2.3": an IP address`},
		"zero ttl":           {with("--ttl", "0s"), 2, "--ttl 0s: use a positive duration"},
		"bad ttl":            {with("--ttl", "1day"), 2, `invalid value "1day" for flag -ttl`},
		"out is the CA":      {with("--out", caDir), 2, "is the CA folder"},
		"extra argument":     {with("now"), 2, `cert issue: unexpected argument "now"`},
		"unknown flag":       {with("--key-size", "4096"), 2, "flag provided but not defined: -key-size"},
		"no subcommand":      {[]string{"cert"}, 2, "cert: missing subcommand"},
		"unknown subcommand": {[]string{"cert", "rotate"}, 2, `cert: unknown subcommand "rotate"; use issue`},
		"help":               {[]string{"cert", "issue", "-h"}, 0, "-service-account"},
		"cert help":          {[]string{"cert", "--help"}, 0, "egressctl cert issue -h"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := runCLI(context.Background(), tc.args...)
			if got.code != tc.code || !strings.Contains(got.stderr, tc.stderr) || got.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stderr with %q", got.code, got.stdout, got.stderr, tc.code, tc.stderr)
			}
		})
	}
	// Nothing was written anywhere.
	if _, err := os.Stat(ok[len(ok)-1]); !os.IsNotExist(err) {
		t.Errorf("--out created by a failed command: %v", err)
	}

	got := runCLI(context.Background(), "help")
	if !strings.Contains(got.stdout, "cert issue  issue a workload certificate") || !bytes.Contains([]byte(got.stdout), []byte("--service-account SA")) {
		t.Errorf("help does not list cert issue:\n%s", got.stdout)
	}
}

// TestCertIssueTTLBeyondCA: a --ttl the CA cannot cover is cut at the CA's
// expiry, with a note.
func TestCertIssueTTLBeyondCA(t *testing.T) {
	caDir, ca := newCADir(t, "")
	out := t.TempDir()
	got := runCLI(context.Background(), "cert", "issue", "--ca-dir", caDir, "--namespace", "a", "--service-account", "b",
		"--ttl", "200000h", "--out", out)
	if got.code != 0 || got.stderr != "egressctl: the certificate ends with the CA's validity, before --ttl 200000h0m0s\n" {
		t.Fatalf("exit %d, stderr %q", got.code, got.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(out, "cert.pem"))
	if leaf := pemCerts(t, b)[0]; !leaf.NotAfter.Equal(ca.NotAfter()) {
		t.Errorf("NotAfter %v, want the CA's %v", leaf.NotAfter, ca.NotAfter())
	}
	if !strings.Contains(got.stdout, "expires:    "+ca.NotAfter().UTC().Format(time.RFC3339)) {
		t.Errorf("stdout %q", got.stdout)
	}
}
