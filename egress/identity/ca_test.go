package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

func TestCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca") // missing: created
	ca, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if ca.PluggedIn() || ca.TrustDomain() != "example.org" {
		t.Errorf("PluggedIn %v, TrustDomain %q", ca.PluggedIn(), ca.TrustDomain())
	}

	// The layout, its modes, and the root it holds.
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{FileCACert, FileCAKey, FileCertChain, FileRootCert}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, FileCAKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600", FileCAKey, err, fi.Mode().Perm())
	}
	root := parseChain(t, ca.BundlePEM())
	if len(root) != 1 {
		t.Fatalf("bundle of %d certificates", len(root))
	}
	r := root[0]
	if r.Subject.CommonName != "egressd CA example.org" || !r.IsCA || r.KeyUsage&x509.KeyUsageCertSign == 0 ||
		len(r.URIs) != 1 || r.URIs[0].String() != "spiffe://example.org" {
		t.Errorf("root: subject %q, CA %v, key usage %v, URIs %v", r.Subject, r.IsCA, r.KeyUsage, r.URIs)
	}
	if pub, ok := r.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key %T, want ECDSA P-256", r.PublicKey)
	}
	if life := r.NotAfter.Sub(r.NotBefore); life < 10*365*24*time.Hour || life > 10*366*24*time.Hour {
		t.Errorf("root lifetime %v, want 10 years", life)
	}
	if !ca.NotAfter().Equal(r.NotAfter) {
		t.Errorf("NotAfter %v, want the root's %v", ca.NotAfter(), r.NotAfter)
	}

	// A restart loads the same CA, and does not write anything.
	before := readAll(t, dir)
	again, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.BundlePEM(), ca.BundlePEM()) || !again.cert.Equal(ca.cert) || again.PluggedIn() {
		t.Error("reloaded CA differs")
	}
	if !again.key.Public().(*ecdsa.PublicKey).Equal(ca.key.Public()) {
		t.Error("reloaded key differs")
	}
	if after := readAll(t, dir); !maps(before, after) {
		t.Error("reloading changed the files")
	}
	loaded, err := Load(dir, "example.org")
	if err != nil || !loaded.cert.Equal(ca.cert) {
		t.Fatalf("Load: %v", err)
	}

	// A certificate from one verifies with the bundle of the other.
	chain, _, err := ca.Issue("default", "sleep", 0)
	if err != nil {
		t.Fatal(err)
	}
	verifyClient(t, chain, again.BundlePEM(), time.Now())
	if n := len(parseChain(t, chain)); n != 1 {
		t.Errorf("chain of %d certificates from a root CA; want the leaf alone", n)
	}
}

func TestCreateInEmptyFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README"), []byte("unrelated"), 0o644)
	ca, err := LoadOrCreate(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if ca.TrustDomain() != DefaultTrustDomain {
		t.Errorf("trust domain %q", ca.TrustDomain())
	}
	// No temporary file left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 {
		t.Errorf("%d entries in the folder, want the 4 CA files and README", len(entries))
	}
}

func TestLoadNeverCreates(t *testing.T) {
	for name, dir := range map[string]string{"missing": filepath.Join(t.TempDir(), "nope"), "empty": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(dir, "")
			if !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %v; want ErrNoCA naming the folder", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("Load wrote %d files", len(entries))
			}
		})
	}
}

func TestTrustDomainMismatch(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, "one.example"); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(dir, "two.example")
	if err == nil || !strings.Contains(err.Error(), `the CA of trust domain "one.example", not "two.example"`) {
		t.Errorf("error %v", err)
	}
	if _, err := Load(dir, "Bad_TD!"); err == nil || !strings.Contains(err.Error(), `trust domain "Bad_TD!"`) {
		t.Errorf("bad trust domain: %v", err)
	}
}

func TestPluggedIn(t *testing.T) {
	l := writeIstioLayout(t)
	ca, err := LoadOrCreate(l.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.PluggedIn() {
		t.Error("PluggedIn false for an Istio layout")
	}
	if !bytes.Equal(ca.BundlePEM(), certsPEM(l.root)) {
		t.Error("bundle is not root-cert.pem")
	}
	if entries, _ := os.ReadDir(l.dir); len(entries) != 4 {
		t.Errorf("%d files; LoadOrCreate must not write to a plugged-in folder", len(entries))
	}

	chainPEM, keyPEM, err := ca.Issue("default", "sleep", time.Hour, "sleep.default.svc")
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyClient(t, chainPEM, ca.BundlePEM(), time.Now())
	chain := parseChain(t, chainPEM)
	// The leaf then cert-chain.pem without the root.
	if len(chain) != 2 || !chain[1].Equal(l.inter.cert) {
		t.Fatalf("chain of %d certificates; want the leaf and the intermediate", len(chain))
	}
	if !bytes.HasSuffix(chainPEM, certsPEM(l.inter)) {
		t.Error("chain does not end with cert-chain.pem's intermediate")
	}
	if err := leaf.CheckSignatureFrom(l.inter.cert); err != nil {
		t.Errorf("leaf not signed by ca-cert.pem: %v", err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"sleep.default.svc"}) {
		t.Errorf("DNS names %v", leaf.DNSNames)
	}
	checkKey(t, keyPEM, leaf)

	// cert-chain.pem without the root (the other usual form) serves the same chain.
	writeFiles(t, l.dir, map[string][]byte{FileCertChain: certsPEM(l.inter)})
	ca2, err := Load(l.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca2.chainPEM, ca.chainPEM) {
		t.Error("chain differs with cert-chain.pem holding the intermediate alone")
	}
}

// TestPluggedInIntermediates: root -> a -> b -> c, c signs.
func TestPluggedInIntermediates(t *testing.T) {
	root := mintCA(t, caSpec{cn: "root"})
	a := mintCA(t, caSpec{cn: "a", parent: root})
	b := mintCA(t, caSpec{cn: "b", parent: a, notAfter: time.Now().Add(48 * time.Hour)})
	c := mintCA(t, caSpec{cn: "c", parent: b})
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		FileCACert: certsPEM(c), FileCAKey: keyPEM(t, c.key), FileRootCert: certsPEM(root), FileCertChain: certsPEM(c, b, a, root),
	})
	ca, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, _, err := ca.Issue("ns", "sa", 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain := parseChain(t, chainPEM)
	if len(chain) != 4 || !chain[1].Equal(c.cert) || !chain[2].Equal(b.cert) || !chain[3].Equal(a.cert) {
		t.Errorf("chain of %d; want leaf, c, b, a", len(chain))
	}
	leaf := verifyClient(t, chainPEM, ca.BundlePEM(), time.Now())
	// Capped at b's NotAfter, the earliest of the chain.
	if !leaf.NotAfter.Equal(b.cert.NotAfter) {
		t.Errorf("NotAfter %v, want b's %v", leaf.NotAfter, b.cert.NotAfter)
	}

	// Out of order.
	writeFiles(t, dir, map[string][]byte{FileCertChain: certsPEM(c, a, b, root)})
	if _, err := Load(dir, ""); err == nil || !strings.Contains(err.Error(), `certificate 2 (subject "CN=a,O=Istio") is not the issuer of the one before it (subject "CN=c,O=Istio")`) {
		t.Errorf("out of order: %v", err)
	}
	// Missing a.
	writeFiles(t, dir, map[string][]byte{FileCertChain: certsPEM(c, b)})
	if _, err := Load(dir, ""); err == nil || !strings.Contains(err.Error(), `the last certificate of the chain (subject "CN=b,O=Istio", issuer "CN=a,O=Istio") is not issued by a root of root-cert.pem`) {
		t.Errorf("incomplete chain: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	other := mintCA(t, caSpec{cn: "Other Root"})
	tests := map[string]struct {
		change  func(t testing.TB, l *istioLayout) map[string][]byte // files to overwrite
		remove  []string
		wantErr []string
	}{
		"partial": {
			remove:  []string{FileRootCert, FileCertChain},
			wantErr: []string{"is incomplete: missing root-cert.pem, cert-chain.pem (found ca-cert.pem, ca-key.pem)"},
		},
		"key only": {
			remove:  []string{FileCACert, FileRootCert, FileCertChain},
			wantErr: []string{"missing ca-cert.pem, root-cert.pem, cert-chain.pem"},
		},
		"mismatched key": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileCAKey: keyPEM(t, testkit.ECKey(t, elliptic.P256()))}
			},
			wantErr: []string{`ca-key.pem is not the key of ca-cert.pem (subject "CN=Intermediate CA,O=Istio")`},
		},
		"not a CA": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				leaf := mintCA(t, caSpec{cn: "Leaf", parent: l.root, notCA: true})
				return map[string][]byte{FileCACert: certsPEM(leaf), FileCAKey: keyPEM(t, leaf.key), FileCertChain: certsPEM(leaf)}
			},
			wantErr: []string{"is not a CA certificate"},
		},
		"no certSign": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				c := mintCA(t, caSpec{cn: "NoSign", parent: l.root, noSign: true})
				return map[string][]byte{FileCACert: certsPEM(c), FileCAKey: keyPEM(t, c.key), FileCertChain: certsPEM(c)}
			},
			wantErr: []string{"may not sign certificates"},
		},
		"another root": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileRootCert: certsPEM(other), FileCertChain: certsPEM(l.inter)}
			},
			wantErr: []string{"is not issued by a root of root-cert.pem"},
		},
		"chain of another CA": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileCertChain: certsPEM(other)}
			},
			wantErr: []string{"cert-chain.pem must start with ca-cert.pem"},
		},
		"expired": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				c := mintCA(t, caSpec{cn: "Old", parent: l.root, notAfter: time.Now().Add(-time.Minute)})
				return map[string][]byte{FileCACert: certsPEM(c), FileCAKey: keyPEM(t, c.key), FileCertChain: certsPEM(c, l.root)}
			},
			wantErr: []string{"does not verify through cert-chain.pem to root-cert.pem", "expired"},
		},
		"key in root-cert.pem": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileRootCert: append(certsPEM(l.root), keyPEM(t, l.inter.key)...)}
			},
			wantErr: []string{"root-cert.pem: PEM block 2 is a private key"},
		},
		"not PEM": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileCACert: l.inter.cert.Raw}
			},
			wantErr: []string{"ca-cert.pem: no PEM block"},
		},
		"broken PEM": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileCAKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nnot base64!\n")}
			},
			wantErr: []string{"ca-key.pem: malformed PEM"},
		},
		"encrypted key": {
			change: func(t testing.TB, l *istioLayout) map[string][]byte {
				return map[string][]byte{FileCAKey: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})}
			},
			wantErr: []string{"the private key is encrypted"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := writeIstioLayout(t)
			if tc.change != nil {
				writeFiles(t, l.dir, tc.change(t, l))
			}
			for _, f := range tc.remove {
				os.Remove(filepath.Join(l.dir, f))
			}
			before := readAll(t, l.dir)
			ca, err := LoadOrCreate(l.dir, "")
			if err == nil {
				t.Fatalf("loaded %v; want an error", ca)
			}
			for _, w := range append(tc.wantErr, l.dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			assertNoKey(t, err.Error(), l.dir)
			if !maps(before, readAll(t, l.dir)) {
				t.Error("a failed load changed the folder")
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca, err := LoadOrCreate(t.TempDir(), "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	chainPEM, keyPEM, err := ca.Issue("default", "sleep", 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyClient(t, chainPEM, ca.BundlePEM(), now)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/sleep" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 {
		t.Errorf("other SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf is a CA")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %v", leaf.KeyUsage)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
	}
	if d := now.Sub(leaf.NotBefore); d < 50*time.Second || d > 70*time.Second {
		t.Errorf("NotBefore %v before now; want a minute", d)
	}
	if d := leaf.NotAfter.Sub(now); d < DefaultTTL-time.Minute || d > DefaultTTL+time.Minute {
		t.Errorf("lifetime %v; want the default %v", d, DefaultTTL)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	checkKey(t, keyPEM, leaf)
	// Verifies as a server certificate too.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.BundlePEM())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Errorf("server auth: %v", err)
	}

	// DNS names: canonical, deduplicated.
	chainPEM, _, err = ca.Issue("default", "sleep", time.Hour, "Sleep.Default.svc.", "sleep.default.svc", "*.example.com")
	if err != nil {
		t.Fatal(err)
	}
	leaf = verifyClient(t, chainPEM, ca.BundlePEM(), now)
	if !slices.Equal(leaf.DNSNames, []string{"sleep.default.svc", "*.example.com"}) {
		t.Errorf("DNS names %v", leaf.DNSNames)
	}
	if d := leaf.NotAfter.Sub(now); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		t.Errorf("lifetime %v; want 1h", d)
	}

	// Capped at the CA's NotAfter.
	chainPEM, _, err = ca.Issue("default", "sleep", 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leaf = parseChain(t, chainPEM)[0]; !leaf.NotAfter.Equal(ca.NotAfter()) {
		t.Errorf("NotAfter %v; want the CA's %v", leaf.NotAfter, ca.NotAfter())
	}

	// Past the CA's NotAfter.
	if _, _, _, err := ca.issue(ca.NotAfter(), "default", "sleep", 0); err == nil || !strings.Contains(err.Error(), "the CA expired") {
		t.Errorf("expired CA: %v", err)
	}

	for _, bad := range []struct{ ns, sa, dns, want string }{
		{"Default", "sleep", "", `namespace "Default"`},
		{"default", "", "", `service account ""`},
		{"default", "sleep", "10.0.0.1", "an IP address"},
		{"default", "sleep", "a b", `DNS name "a b"`},
	} {
		var dns []string
		if bad.dns != "" {
			dns = append(dns, bad.dns)
		}
		if _, _, err := ca.Issue(bad.ns, bad.sa, 0, dns...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Issue(%q, %q, %q): %v; want an error with %q", bad.ns, bad.sa, bad.dns, err, bad.want)
		}
	}
}

// TestNoKeyInOutput: formatting a CA or its errors shows no key material.
func TestNoKeyInOutput(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreate(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(verb, ca)
		if !strings.Contains(s, "egressd CA cluster.local") {
			t.Errorf("%s: %q", verb, s)
		}
		assertNoKey(t, s, dir)
	}
}

// assertNoKey fails when s holds the key of dir: its PEM, base64 or hex.
func assertNoKey(t *testing.T, s, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileCAKey))
	if err != nil {
		return
	}
	if strings.Contains(s, "PRIVATE KEY") {
		t.Errorf("key PEM in %q", s)
	}
	if lines := strings.Split(string(b), "\n"); len(lines) > 1 && len(lines[1]) >= 20 && strings.Contains(s, lines[1][:20]) {
		t.Errorf("key base64 in %q", s)
	}
	if blk, _ := pem.Decode(b); blk != nil && len(blk.Bytes) >= 16 && strings.Contains(s, fmt.Sprintf("%x", blk.Bytes[:16])) {
		t.Errorf("key hex in %q", s)
	}
}

// checkKey checks that keyPEM is the PKCS#8 key of leaf.
func checkKey(t *testing.T, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	blk, rest := pem.Decode(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key PEM: want one PKCS#8 PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || !ek.PublicKey.Equal(leaf.PublicKey) {
		t.Error("key does not match the leaf")
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()] = string(b)
	}
	return out
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
