package origination

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// loadCase is one Load test: setup writes files under dir and returns the
// source to load.
type loadCase struct {
	setup   func(t *testing.T, dir string) Source
	want    Want
	errHas  []string // substrings of the error; none: Load must succeed
	errIs   error
	check   func(t *testing.T, m *Material)
	certDir bool // pass dir as certDir
}

// filePair writes a certificate file and a key file.
func filePair(t *testing.T, dir string, certPEM, keyPEM []byte) Source {
	return Source{
		CertFile: writeFile(t, filepath.Join(dir, "client.crt"), certPEM),
		KeyFile:  writeFile(t, filepath.Join(dir, "client.key"), keyPEM),
	}
}

func pairOf(key func(t *testing.T) *issued) func(t *testing.T, dir string) Source {
	return func(t *testing.T, dir string) Source {
		i := key(t)
		return filePair(t, dir, i.certPEM(), i.keyPEM(t))
	}
}

func TestLoadKeyPair(t *testing.T) {
	cases := map[string]loadCase{
		"ecdsa p256": {
			setup: pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "ec256"}) }),
			check: func(t *testing.T, m *Material) {
				if m.Leaf.Subject.CommonName != "ec256" || !m.NotAfter.Equal(m.Leaf.NotAfter) || !m.NotBefore.Equal(m.Leaf.NotBefore) {
					t.Errorf("leaf %v, validity %v..%v", m.Leaf.Subject, m.NotBefore, m.NotAfter)
				}
				if m.CAPEM != nil {
					t.Errorf("CAPEM set without WantCA")
				}
			},
		},
		"ecdsa p384": {
			setup: pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "ec384", key: testkit.ECKey(t, elliptic.P384())}) }),
		},
		"rsa 2048": {
			setup: pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "rsa", key: testkit.RSAKey(t, 2048)}) }),
		},
		"rsa 2048 pkcs1 key": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "rsa1", key: testkit.RSAKey(t, 2048)})
				return filePair(t, dir, i.certPEM(), pkcs1PEM(i.key.(*rsa.PrivateKey)))
			},
		},
		"ec key with openssl EC PARAMETERS block": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "ecparam"})
				params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
				return filePair(t, dir, i.certPEM(), pemOf(params, sec1PEM(t, i.key.(*ecdsa.PrivateKey))))
			},
		},
		"chain with intermediate, in order": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "ordered")
				return filePair(t, dir, pemOf(c.leaf.certPEM(), c.inter.certPEM(), c.root.certPEM()), c.leaf.keyPEM(t))
			},
			check: func(t *testing.T, m *Material) {
				if n := countCerts(m.CertChainPEM); n != 3 || m.Leaf.Subject.CommonName != "ordered client" {
					t.Errorf("chain of %d, leaf %v", n, m.Leaf.Subject)
				}
			},
		},
		"combined file: chain and key in one": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "combined")
				f := writeFile(t, filepath.Join(dir, "both.pem"), pemOf(c.leaf.certPEM(), c.leaf.keyPEM(t), c.inter.certPEM()))
				return Source{CertFile: f, KeyFile: f}
			},
			check: func(t *testing.T, m *Material) {
				if bytes.Contains(m.CertChainPEM, []byte("PRIVATE KEY")) || countCerts(m.CertChainPEM) != 2 {
					t.Errorf("chain holds the key or lost a certificate:\n%s", m.CertChainPEM)
				}
			},
		},
		"chain out of order": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "unordered")
				return filePair(t, dir, pemOf(c.inter.certPEM(), c.leaf.certPEM()), c.leaf.keyPEM(t))
			},
			errHas: []string{"client.crt", "belongs to certificate 2", "leaf first"},
		},
		"chain with a foreign issuer": {
			setup: func(t *testing.T, dir string) Source {
				c, other := newChain(t, "a"), newChain(t, "b")
				return filePair(t, dir, pemOf(c.leaf.certPEM(), other.inter.certPEM()), c.leaf.keyPEM(t))
			},
			errHas: []string{"client.crt", "certificate 1", "is not signed by certificate 2", "in order"},
		},
		"expired": {
			setup: pairOf(func(t *testing.T) *issued {
				return mint(t, spec{cn: "old", notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Hour)})
			}),
			errHas: []string{"client.crt", "expired", "not valid after 2031-03-01T11:00:00Z"},
			errIs:  ErrExpired,
		},
		"expired intermediate": {
			setup: func(t *testing.T, dir string) Source {
				root := mint(t, spec{cn: "root", ca: true})
				inter := mint(t, spec{cn: "inter", ca: true, parent: root, notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Hour)})
				leaf := mint(t, spec{cn: "leaf", parent: inter})
				return filePair(t, dir, pemOf(leaf.certPEM(), inter.certPEM()), leaf.keyPEM(t))
			},
			errHas: []string{"certificate 2", "inter"},
			errIs:  ErrExpired,
		},
		"not yet valid": {
			setup: pairOf(func(t *testing.T) *issued {
				return mint(t, spec{cn: "future", notBefore: t0.Add(time.Hour), notAfter: t0.Add(48 * time.Hour)})
			}),
			errHas: []string{"client.crt", "not valid yet", "not valid before"},
			errIs:  ErrNotYetValid,
		},
		"mismatched key": {
			setup: func(t *testing.T, dir string) Source {
				a, b := mint(t, spec{cn: "a"}), mint(t, spec{cn: "b"})
				return filePair(t, dir, a.certPEM(), b.keyPEM(t))
			},
			errHas: []string{"client.crt", "client.key", "does not match"},
		},
		"rsa 1024 refused": {
			setup:  pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "weak", key: testkit.RSAKey(t, 1024)}) }),
			errHas: []string{"client.crt", "RSA 1024-bit", "at least 2048"},
		},
		"ed25519 refused": {
			setup:  pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "ed", key: testkit.Ed25519Key(t)}) }),
			errHas: []string{"client.crt", "Ed25519"},
		},
		"ecdsa p521 refused": {
			setup:  pairOf(func(t *testing.T) *issued { return mint(t, spec{cn: "p521", key: testkit.ECKey(t, elliptic.P521())}) }),
			errHas: []string{"client.crt", "ECDSA P-521"},
		},
		"malformed PEM": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "broken"})
				bad := bytes.Replace(i.certPEM(), []byte("\n"), []byte("\n!!not base64!!\n"), 2)
				return filePair(t, dir, bad, i.keyPEM(t))
			},
			errHas: []string{"client.crt", "malformed PEM"},
		},
		"empty certificate file": {
			setup: func(t *testing.T, dir string) Source {
				return filePair(t, dir, nil, mint(t, spec{cn: "x"}).keyPEM(t))
			},
			errHas: []string{"client.crt", "no PEM block"},
		},
		"key file without a key": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "nokey"})
				return filePair(t, dir, i.certPEM(), i.certPEM())
			},
			errHas: []string{"client.key", "no PRIVATE KEY block"},
		},
		"key file with two keys": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "twokeys"})
				return filePair(t, dir, i.certPEM(), pemOf(i.keyPEM(t), mint(t, spec{cn: "other"}).keyPEM(t)))
			},
			errHas: []string{"client.key", "2 private keys"},
		},
		"encrypted key": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "enc"})
				enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})
				return filePair(t, dir, i.certPEM(), enc)
			},
			errHas: []string{"client.key", "encrypted"},
		},
		"corrupt key": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "corrupt"})
				return filePair(t, dir, i.certPEM(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 3, 2, 1, 0}}))
			},
			errHas: []string{"client.key", "PRIVATE KEY block"},
		},
		"missing certificate file": {
			setup: func(t *testing.T, dir string) Source {
				return Source{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: writeFile(t, filepath.Join(dir, "k"), mint(t, spec{cn: "m"}).keyPEM(t))}
			},
			errHas: []string{"nope.crt", "no such file"},
		},
		"missing key file": {
			setup: func(t *testing.T, dir string) Source {
				return Source{CertFile: writeFile(t, filepath.Join(dir, "c"), mint(t, spec{cn: "m"}).certPEM()), KeyFile: filepath.Join(dir, "nope.key")}
			},
			errHas: []string{"nope.key", "no such file"},
		},
		"relative path": {
			setup:  func(t *testing.T, dir string) Source { return Source{CertFile: "client.crt", KeyFile: "/k"} },
			errHas: []string{"clientCertificate", `"client.crt"`, "absolute"},
		},
		"no key path": {
			setup:  func(t *testing.T, dir string) Source { return Source{CertFile: "/c"} },
			errHas: []string{"privateKey is not set"},
		},
	}
	runLoadCases(t, cases, WantKeyPair)
}

func TestLoadCA(t *testing.T) {
	cases := map[string]loadCase{
		"bundle of two roots, with text and a CRL": {
			setup: func(t *testing.T, dir string) Source {
				a, b := mint(t, spec{cn: "root a", ca: true}), mint(t, spec{cn: "root b", ca: true})
				crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{0x30, 0}})
				return Source{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), pemOf([]byte("# roots\n"), a.certPEM(), crl, b.certPEM()))}
			},
			check: func(t *testing.T, m *Material) {
				if countCerts(m.CAPEM) != 2 || !bytes.Contains(m.CAPEM, []byte("X509 CRL")) || bytes.Contains(m.CAPEM, []byte("# roots")) {
					t.Errorf("CAPEM:\n%s", m.CAPEM)
				}
				if m.Leaf != nil || m.CertChainPEM != nil || m.KeyPEM != nil {
					t.Errorf("key pair set with WantCA only")
				}
			},
		},
		"CA file containing a key": {
			setup: func(t *testing.T, dir string) Source {
				a := mint(t, spec{cn: "root", ca: true})
				return Source{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), pemOf(a.certPEM(), a.keyPEM(t)))}
			},
			errHas: []string{"ca.pem", "PEM block 2 is a private key", "certificates only"},
		},
		"CA file without a certificate": {
			setup: func(t *testing.T, dir string) Source {
				crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{0x30, 0}})
				return Source{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), crl)}
			},
			errHas: []string{"ca.pem", "no CERTIFICATE block"},
		},
		"CA file with a corrupt certificate": {
			setup: func(t *testing.T, dir string) Source {
				bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}})
				return Source{CAFile: writeFile(t, filepath.Join(dir, "ca.pem"), pemOf(mint(t, spec{cn: "r", ca: true}).certPEM(), bad))}
			},
			errHas: []string{"ca.pem", "PEM block 2"},
		},
		"missing CA file": {
			setup:  func(t *testing.T, dir string) Source { return Source{CAFile: filepath.Join(dir, "none.pem")} },
			errHas: []string{"none.pem", "no such file"},
		},
		"relative CA path": {
			setup:  func(t *testing.T, dir string) Source { return Source{CAFile: "ca.pem"} },
			errHas: []string{"caCertificates", "absolute"},
		},
	}
	runLoadCases(t, cases, WantCA)
}

// credential writes a credential folder under dir with the given files.
func credential(t *testing.T, dir, name string, files map[string][]byte) Source {
	for f, b := range files {
		writeFile(t, filepath.Join(dir, name, f), b)
	}
	return Source{CredentialName: name}
}

func TestLoadCredential(t *testing.T) {
	cases := map[string]loadCase{
		"kubernetes tls layout": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "k8s")
				return credential(t, dir, "k8s", map[string][]byte{
					"tls.crt": pemOf(c.leaf.certPEM(), c.inter.certPEM()), "tls.key": c.leaf.keyPEM(t), "ca.crt": c.root.certPEM(),
				})
			},
			check: func(t *testing.T, m *Material) {
				if m.Leaf.Subject.CommonName != "k8s client" || countCerts(m.CAPEM) != 1 || m.KeyPEM == nil {
					t.Errorf("material %v", m)
				}
			},
		},
		"istio generic layout": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "istio")
				return credential(t, dir, "istio", map[string][]byte{
					"cert": pemOf(c.leaf.certPEM(), c.inter.certPEM()), "key": c.leaf.keyPEM(t), "cacert": c.root.certPEM(),
				})
			},
			check: func(t *testing.T, m *Material) {
				if m.Leaf.Subject.CommonName != "istio client" || countCerts(m.CAPEM) != 1 {
					t.Errorf("material %v", m)
				}
			},
		},
		"first layout found wins per file": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "mixed")
				junk := []byte("not read")
				return credential(t, dir, "mixed", map[string][]byte{
					"tls.crt": pemOf(c.leaf.certPEM(), c.inter.certPEM()), "cert": junk,
					"key":    c.leaf.keyPEM(t), // no tls.key: the Istio name is used
					"ca.crt": c.root.certPEM(), "cacert": junk,
				})
			},
		},
		"folder with neither layout": {
			setup: func(t *testing.T, dir string) Source {
				return credential(t, dir, "empty", map[string][]byte{"README": []byte("nothing")})
			},
			errHas: []string{`credentialName "empty"`, "no certificate in", "tls.crt", "cert (Istio"},
		},
		"key missing from the folder": {
			setup: func(t *testing.T, dir string) Source {
				return credential(t, dir, "nokey", map[string][]byte{"tls.crt": mint(t, spec{cn: "x"}).certPEM()})
			},
			errHas: []string{"no private key in", "tls.key", "key (Istio"},
		},
		"CA missing from the folder": {
			setup: func(t *testing.T, dir string) Source {
				i := mint(t, spec{cn: "x"})
				return credential(t, dir, "noca", map[string][]byte{"tls.crt": i.certPEM(), "tls.key": i.keyPEM(t)})
			},
			errHas: []string{"no CA bundle in", "ca.crt", "cacert"},
		},
		"missing folder": {
			setup:  func(t *testing.T, dir string) Source { return Source{CredentialName: "ghost"} },
			errHas: []string{`credentialName "ghost"`, "does not exist", "tls.crt, tls.key, ca.crt", "cert, key, cacert"},
		},
		"a path is not a credential name": {
			setup:  func(t *testing.T, dir string) Source { return Source{CredentialName: "../etc"} },
			errHas: []string{"plain name"},
		},
		"credentialName wins over file paths": {
			setup: func(t *testing.T, dir string) Source {
				c := newChain(t, "wins")
				src := credential(t, dir, "wins", map[string][]byte{
					"tls.crt": pemOf(c.leaf.certPEM(), c.inter.certPEM()), "tls.key": c.leaf.keyPEM(t), "ca.crt": c.root.certPEM(),
				})
				src.CertFile, src.KeyFile, src.CAFile = "/nonexistent/c", "/nonexistent/k", "/nonexistent/ca"
				return src
			},
		},
	}
	for name, c := range cases {
		c.certDir = true
		cases[name] = c
	}
	runLoadCases(t, cases, WantKeyPair|WantCA)

	t.Run("no cert dir", func(t *testing.T) {
		_, err := Load(Source{CredentialName: "x"}, "", WantKeyPair, t0)
		if err == nil || !strings.Contains(err.Error(), "--cert-dir") {
			t.Errorf("err = %v, want one naming --cert-dir", err)
		}
	})
	t.Run("want nothing", func(t *testing.T) {
		if _, err := Load(Source{CAFile: "/x"}, "", 0, t0); err == nil {
			t.Error("Load with want 0 succeeded")
		}
	})
}

func runLoadCases(t *testing.T, cases map[string]loadCase, want Want) {
	t.Helper()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := c.setup(t, dir)
			certDir := ""
			if c.certDir {
				certDir = dir
			}
			w := want
			if c.want != 0 {
				w = c.want
			}
			m, err := Load(src, certDir, w, t0)
			if len(c.errHas) == 0 && c.errIs == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				checkMaterial(t, m, w)
				if c.check != nil {
					c.check(t, m)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded, want an error with %q", c.errHas)
			}
			t.Logf("error: %v", err)
			for _, s := range c.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if c.errIs != nil && !errors.Is(err, c.errIs) {
				t.Errorf("error %q is not %v", err, c.errIs)
			}
			if leaks(err.Error()) {
				t.Errorf("error reveals a private key: %q", err)
			}
		})
	}
}

// checkMaterial checks what every loaded Material must satisfy.
func checkMaterial(t *testing.T, m *Material, w Want) {
	t.Helper()
	if w&WantKeyPair != 0 {
		if m.Leaf == nil || m.KeyPEM == nil || m.CertChainPEM == nil {
			t.Fatalf("key pair incomplete: %v", m)
		}
		b, _ := pem.Decode(m.CertChainPEM)
		if b == nil || !bytes.Equal(b.Bytes, m.Leaf.Raw) {
			t.Errorf("CertChainPEM does not start with the leaf")
		}
		if _, err := x509ParseKeyPEM(m.KeyPEM); err != nil {
			t.Errorf("KeyPEM: %v", err)
		}
	}
	if w&WantCA != 0 && countCerts(m.CAPEM) == 0 {
		t.Errorf("no CA certificate in %v", m)
	}
}

// x509ParseKeyPEM parses the key of canonical KeyPEM.
func x509ParseKeyPEM(b []byte) (any, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not exactly one PEM block")
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	}
	return x509.ParsePKCS8PrivateKey(blk.Bytes)
}

func pkcs1PEM(k *rsa.PrivateKey) []byte {
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	rememberKey(b)
	return b
}

func sec1PEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	rememberKey(b)
	return b
}

func TestSystemCA(t *testing.T) {
	dir := t.TempDir()
	bundle := pemOf([]byte("# system roots\n"), mint(t, spec{cn: "sys root", ca: true}).certPEM())
	f := writeFile(t, filepath.Join(dir, "system.pem"), bundle)
	saved := systemCAFiles
	t.Cleanup(func() { systemCAFiles = saved })

	t.Setenv("SSL_CERT_FILE", "")
	systemCAFiles = []string{filepath.Join(dir, "missing.pem"), f}
	got, err := SystemCA()
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatalf("SystemCA() = %q, %v; want the second path's bundle", got, err)
	}
	m, err := Load(Source{}, "", WantCA, t0)
	if err != nil || countCerts(m.CAPEM) != 1 {
		t.Fatalf("Load(system CA) = %v, %v", m, err)
	}

	systemCAFiles = []string{filepath.Join(dir, "missing.pem")}
	if _, err := SystemCA(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("SystemCA() with no bundle: err = %v, want one naming the paths tried", err)
	}
	t.Setenv("SSL_CERT_FILE", f)
	if got, err := SystemCA(); err != nil || !bytes.Equal(got, bundle) {
		t.Errorf("SystemCA() with SSL_CERT_FILE = %q, %v", got, err)
	}
}
