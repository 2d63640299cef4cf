package origination

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// t0 is "now" in tests: certificates are minted around it and Load checks
// against it, so results do not depend on the wall clock.
var t0 = time.Date(2031, time.March, 1, 12, 0, 0, 0, time.UTC)

// issued is a minted certificate and its key.
type issued struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// spec describes a certificate to mint.
type spec struct {
	cn        string
	key       crypto.Signer // nil: a new ECDSA P-256 key
	parent    *issued       // nil: self-signed
	ca        bool
	notBefore time.Time // zero: t0 - 1h
	notAfter  time.Time // zero: t0 + 90 days
}

// mint creates a certificate as s describes (testkit's PKI), around t0:
// a CA signs certificates and CRLs, a leaf is a client's.
func mint(t testing.TB, s spec) *issued {
	t.Helper()
	if s.notBefore.IsZero() {
		s.notBefore = t0.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = t0.Add(90 * 24 * time.Hour)
	}
	ts := testkit.Spec{CommonName: s.cn, Key: s.key, CA: s.ca, NotBefore: s.notBefore, NotAfter: s.notAfter}
	if s.ca {
		ts.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		ts.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if s.parent != nil {
		ts.Parent = &testkit.Cert{Cert: s.parent.cert, Key: s.parent.key}
	}
	c := testkit.Issue(t, ts)
	return &issued{cert: c.Cert, key: c.Key}
}

// certPEM is the certificate alone, PEM.
func (i *issued) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.cert.Raw})
}

// keyPEM is the key, PKCS#8 PEM.
func (i *issued) keyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(i.key)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	rememberKey(b)
	return b
}

// pemOf concatenates PEM blocks.
func pemOf(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// chain is a three-level PKI: root CA -> intermediate CA -> leaf.
type chain struct {
	root, inter, leaf *issued
}

func newChain(t testing.TB, name string) chain {
	t.Helper()
	root := mint(t, spec{cn: name + " root", ca: true})
	inter := mint(t, spec{cn: name + " intermediate", ca: true, parent: root})
	leaf := mint(t, spec{cn: name + " client", parent: inter})
	return chain{root: root, inter: inter, leaf: leaf}
}

// keyLines holds every line of every private key PEM the tests wrote, so
// leaks checks that no log line or error carries one.
var keyLines struct {
	sync.Mutex
	lines map[string]bool
}

func rememberKey(pemBytes []byte) {
	keyLines.Lock()
	defer keyLines.Unlock()
	if keyLines.lines == nil {
		keyLines.lines = map[string]bool{}
	}
	for _, l := range strings.Split(string(pemBytes), "\n") {
		if len(l) >= 32 && !strings.HasPrefix(l, "-----") {
			keyLines.lines[l] = true
		}
	}
}

// leaks reports whether s holds a line of a private key.
func leaks(s string) bool {
	keyLines.Lock()
	defer keyLines.Unlock()
	if strings.Contains(s, "PRIVATE KEY-----") {
		return true
	}
	for l := range keyLines.lines {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

// writeFile writes a file, creating its folder.
func writeFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile replaces a file atomically: a temporary file in the same
// folder, renamed over it.
func replaceFile(t testing.TB, p string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	writeFile(t, tmp, b)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// k8sVolume lays files out in dir as the kubelet does for a Secret volume:
// files in a timestamped folder, "..data" a symlink to it, and each name a
// symlink through "..data".
type k8sVolume struct {
	dir string
	gen int
}

func newK8sVolume(t testing.TB, dir string, files map[string][]byte) *k8sVolume {
	t.Helper()
	v := &k8sVolume{dir: dir}
	target := v.writeGeneration(t, files)
	if err := os.Symlink(target, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *k8sVolume) writeGeneration(t testing.TB, files map[string][]byte) string {
	t.Helper()
	v.gen++
	target := fmt.Sprintf("..2031_03_01_12_00_%02d.%d", v.gen, v.gen)
	for name, b := range files {
		writeFile(t, filepath.Join(v.dir, target, name), b)
	}
	return target
}

// swap publishes new files as the kubelet does: a new timestamped folder,
// "..data_tmp" pointing at it renamed over "..data", the old folder removed.
func (v *k8sVolume) swap(t testing.TB, files map[string][]byte) {
	t.Helper()
	old, err := os.Readlink(filepath.Join(v.dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	target := v.writeGeneration(t, files)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
		t.Fatal(err)
	}
}
