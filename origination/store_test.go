package origination

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// k8sFiles are a credential folder's files for a chain, kubernetes.io/tls layout.
func k8sFiles(t *testing.T, c chain) map[string][]byte {
	return map[string][]byte{
		"tls.crt": pemOf(c.leaf.certPEM(), c.inter.certPEM()),
		"tls.key": c.leaf.keyPEM(t),
		"ca.crt":  c.root.certPEM(),
	}
}

// useSystemCA points the system trust bundle at a test file.
func useSystemCA(t *testing.T, dir string) []byte {
	bundle := mint(t, spec{cn: "system root", ca: true}).certPEM()
	f := writeFile(t, filepath.Join(dir, "system", "bundle.pem"), bundle)
	saved := systemCAFiles
	t.Cleanup(func() { systemCAFiles = saved })
	systemCAFiles = []string{f}
	t.Setenv("SSL_CERT_FILE", "")
	return bundle
}

func secretNames(ss []*tlsv3.Secret) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.GetName())
	}
	return out
}

func secretByName(ss []*tlsv3.Secret, name string) *tlsv3.Secret {
	for _, s := range ss {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func chainOf(s *tlsv3.Secret) []byte {
	return s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
}

func TestStoreWantSecrets(t *testing.T) {
	e := newEnv(t, time.Hour)
	systemBundle := useSystemCA(t, t.TempDir())

	files := mint(t, spec{cn: "files client"})
	fileSrc := Source{
		CertFile: writeFile(t, filepath.Join(e.dir, "files", "client.crt"), files.certPEM()),
		KeyFile:  writeFile(t, filepath.Join(e.dir, "files", "client.key"), files.keyPEM(t)),
	}
	caFile := mint(t, spec{cn: "file root", ca: true})
	caSrc := Source{CAFile: writeFile(t, filepath.Join(e.dir, "files", "ca.pem"), caFile.certPEM())}
	partner := newChain(t, "partner")
	credential(t, e.dir, "partner", k8sFiles(t, partner))

	errs := e.s.Want(
		[]Source{fileSrc, {CredentialName: "partner"}, {CredentialName: "ghost"}, {CredentialName: "partner"}},
		[]Source{{CredentialName: "partner"}, {}, caSrc},
	)
	if len(errs) != 1 || errs["egressd-client/ghost"] == nil || !strings.Contains(errs["egressd-client/ghost"].Error(), "does not exist") {
		t.Fatalf("Want errors = %v, want one for egressd-client/ghost", errs)
	}

	secrets := e.s.Secrets()
	wantNames := []string{
		CASecretName(caSrc), "egressd-ca/partner", SystemCASecret,
		ClientSecretName(fileSrc), "egressd-client/partner",
	}
	if got := secretNames(secrets); !slices.Equal(got, wantNames) {
		t.Fatalf("Secrets() names = %q, want %q", got, wantNames)
	}
	for _, s := range secrets {
		if err := s.ValidateAll(); err != nil {
			t.Errorf("secret %s does not validate: %v", s.GetName(), err)
		}
	}
	p := secretByName(secrets, "egressd-client/partner").GetTlsCertificate()
	if !bytes.Equal(p.GetCertificateChain().GetInlineBytes(), pemOf(partner.leaf.certPEM(), partner.inter.certPEM())) {
		t.Errorf("client chain:\n%s", p.GetCertificateChain().GetInlineBytes())
	}
	if !bytes.Equal(p.GetPrivateKey().GetInlineBytes(), partner.leaf.keyPEM(t)) {
		t.Errorf("client key differs from the file's")
	}
	checks := map[string][]byte{
		"egressd-ca/partner": partner.root.certPEM(),
		SystemCASecret:       systemBundle,
		CASecretName(caSrc):  caFile.certPEM(),
	}
	for name, want := range checks {
		vc := secretByName(secrets, name).GetValidationContext()
		if got := vc.GetTrustedCa().GetInlineBytes(); !bytes.Equal(got, want) {
			t.Errorf("%s trusted CA:\n%s\nwant\n%s", name, got, want)
		}
	}

	v1 := e.s.Version()
	if errs := e.s.Want([]Source{fileSrc, {CredentialName: "partner"}, {CredentialName: "ghost"}}, []Source{caSrc, {}, {CredentialName: "partner"}}); len(errs) != 1 {
		t.Errorf("second Want errors = %v", errs)
	}
	if v := e.s.Version(); v != v1 {
		t.Errorf("Version changed from %s to %s with the same secrets", v1, v)
	}
	if _, ok := e.metric(t, "egressd_client_cert_expiry_timestamp_seconds", "secret", "egressd-client/partner"); !ok {
		t.Errorf("no expiry metric for egressd-client/partner")
	}

	e.s.Want([]Source{fileSrc}, nil)
	if got := secretNames(e.s.Secrets()); !slices.Equal(got, []string{ClientSecretName(fileSrc)}) {
		t.Errorf("after narrowing Want: %q", got)
	}
	if e.s.Version() == v1 {
		t.Errorf("Version unchanged after secrets were dropped")
	}
	if _, ok := e.metric(t, "egressd_client_cert_expiry_timestamp_seconds", "secret", "egressd-client/partner"); ok {
		t.Errorf("expiry metric of an unwanted secret is still exported")
	}

	// A secret that failed is retried by the next Want.
	credential(t, e.dir, "ghost", k8sFiles(t, newChain(t, "ghost")))
	if errs := e.s.Want([]Source{{CredentialName: "ghost"}}, nil); errs != nil {
		t.Errorf("Want after the folder appeared: %v", errs)
	}
	if got := secretNames(e.s.Secrets()); !slices.Equal(got, []string{"egressd-client/ghost"}) {
		t.Errorf("Secrets() = %q", got)
	}
}

func TestStoreVersionFollowsContent(t *testing.T) {
	e := newEnv(t, time.Hour)
	a, b := mint(t, spec{cn: "a"}), mint(t, spec{cn: "b"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	if errs := e.s.Want([]Source{src}, nil); errs != nil {
		t.Fatal(errs)
	}
	va := e.s.Version()

	if e.s.reload() || e.s.Version() != va {
		t.Errorf("reload of unchanged files changed Version")
	}
	replaceFile(t, src.CertFile, a.certPEM()) // same bytes, new file
	if e.s.reload() || e.s.Version() != va {
		t.Errorf("rewriting the same bytes changed Version")
	}

	replaceFile(t, src.CertFile, b.certPEM())
	replaceFile(t, src.KeyFile, b.keyPEM(t))
	if !e.s.reload() {
		t.Errorf("reload after rotation reported no change")
	}
	vb := e.s.Version()
	if vb == va {
		t.Errorf("Version unchanged after rotation")
	}
	if !bytes.Equal(chainOf(e.s.Secrets()[0]), b.certPEM()) {
		t.Errorf("Secrets() still serves the old certificate")
	}

	replaceFile(t, src.CertFile, a.certPEM())
	replaceFile(t, src.KeyFile, a.keyPEM(t))
	e.s.reload()
	if e.s.Version() != va {
		t.Errorf("Version is not a function of content: back to a gives %s, was %s", e.s.Version(), va)
	}
	if strings.Contains(va, string(a.keyPEM(t))) || len(va) != 32 {
		t.Errorf("Version %q", va)
	}
}

func TestStoreKeepsLastGood(t *testing.T) {
	e := newEnv(t, time.Hour)
	a, other := mint(t, spec{cn: "good"}), mint(t, spec{cn: "other"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	e.s.Want([]Source{src}, nil)
	name := ClientSecretName(src)
	v := e.s.Version()

	breakages := map[string]func(){
		"mismatched key": func() { replaceFile(t, src.KeyFile, other.keyPEM(t)) },
		"bad PEM": func() {
			replaceFile(t, src.CertFile, []byte("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"))
		},
		"missing file": func() { os.Remove(src.CertFile) },
		"expired":      func() { e.setNow(a.cert.NotAfter.Add(time.Minute)) },
	}
	for _, what := range []string{"mismatched key", "bad PEM", "missing file", "expired"} {
		t.Run(what, func(t *testing.T) {
			before := len(e.logs.All())
			errorsBefore := e.reloadErrors(t)
			breakages[what]()
			if e.s.reload() {
				t.Errorf("reload reported a change")
			}
			if got := e.s.Secrets(); len(got) != 1 || !bytes.Equal(chainOf(got[0]), a.certPEM()) || e.s.Version() != v {
				t.Fatalf("the last good material is not served: %q", secretNames(got))
			}
			if got := e.reloadErrors(t); got != errorsBefore+1 {
				t.Errorf("egressd_cert_reloads_total{result=error} = %v, want %v", got, errorsBefore+1)
			}
			logged := e.logs.All()[before:]
			if len(logged) != 1 || logged[0].Level.String() != "error" || logged[0].ContextMap()[keySecret] != name ||
				logged[0].ContextMap()[keyLastGood] != true || logged[0].ContextMap()["error"] == nil {
				t.Fatalf("logged %v, want one error naming %s and the reason", logged, name)
			}
			// Restore the good files and clock for the next breakage.
			replaceFile(t, src.CertFile, a.certPEM())
			replaceFile(t, src.KeyFile, a.keyPEM(t))
			e.setNow(t0)
			e.s.reload()
			if len(e.messages("tls secret valid again")) == 0 {
				t.Errorf("recovery not logged")
			}
		})
	}

	t.Run("same error is logged once, expiry every time", func(t *testing.T) {
		const failed = "tls secret reload failed; serving the last good material"
		before := len(e.messages(failed))
		replaceFile(t, src.KeyFile, other.keyPEM(t))
		e.s.reload()
		e.s.reload()
		if n := len(e.messages(failed)) - before; n != 1 {
			t.Errorf("a repeated failure was logged %d times, want once", n)
		}
		replaceFile(t, src.KeyFile, a.keyPEM(t))
		e.setNow(a.cert.NotAfter.Add(time.Hour))
		before = len(e.messages("client certificate has expired"))
		e.s.reload()
		e.s.reload()
		if n := len(e.messages("client certificate has expired")) - before; n != 2 {
			t.Errorf("an expired certificate was logged %d times in two reloads, want 2", n)
		}
		e.setNow(t0)
	})

	t.Run("new secret that fails is absent", func(t *testing.T) {
		bad := Source{CertFile: filepath.Join(e.dir, "none.crt"), KeyFile: src.KeyFile}
		errs := e.s.Want([]Source{src, bad}, nil)
		if errs[ClientSecretName(bad)] == nil || len(errs) != 1 {
			t.Fatalf("Want errors = %v", errs)
		}
		if got := secretNames(e.s.Secrets()); !slices.Equal(got, []string{name}) {
			t.Errorf("Secrets() = %q, want only %s", got, name)
		}
		for _, err := range errs {
			if leaks(err.Error()) {
				t.Errorf("error reveals the key: %v", err)
			}
		}
	})
}

func TestStoreExpiry(t *testing.T) {
	e := newEnv(t, time.Hour)
	a := mint(t, spec{cn: "soon"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	name := ClientSecretName(src)
	notAfter := a.cert.NotAfter
	e.setNow(notAfter.Add(-10*24*time.Hour - time.Hour))

	e.s.Want([]Source{src}, []Source{{CAFile: writeFile(t, filepath.Join(e.dir, "ca.pem"), mint(t, spec{cn: "r", ca: true}).certPEM())}})
	if v, ok := e.metric(t, "egressd_client_cert_expiry_timestamp_seconds", "secret", name); !ok || v != float64(notAfter.Unix()) {
		t.Errorf("expiry metric = %v, %v; want %d", v, ok, notAfter.Unix())
	}
	warned := e.messages("client certificate expires in 10 days")
	if len(warned) != 1 {
		t.Fatalf("expiry warnings: %v", e.logs.All())
	}
	f := warned[0].ContextMap()
	if f[keySecret] != name || f[keySubject] != "CN=soon,O=egressd tests" || !f[keyNotAfter].(time.Time).Equal(notAfter) || f[keyDays] != int64(10) {
		t.Errorf("warning fields = %v", f)
	}

	e.setNow(notAfter.Add(-9*24*time.Hour - 2*time.Hour)) // 23 hours later
	e.s.reload()
	if n := e.logs.FilterMessageSnippet("client certificate expires in").Len(); n != 1 {
		t.Errorf("warned %d times within a day, want once", n)
	}
	e.setNow(notAfter.Add(-9*24*time.Hour + 2*time.Hour)) // 25 hours after the first
	e.s.reload()
	if n := len(e.messages("client certificate expires in 8 days")); n != 1 {
		t.Errorf("no second warning a day later: %v", e.logs.FilterMessageSnippet("expires in").All())
	}

	e.setNow(notAfter.Add(time.Second))
	e.s.reload()
	expired := e.messages("client certificate has expired")
	if len(expired) != 1 || expired[0].ContextMap()[keySecret] != name {
		t.Fatalf("expired certificate not logged: %v", e.logs.All())
	}
	if got := e.s.Secrets(); len(got) != 2 {
		t.Errorf("expired secret dropped: %q", secretNames(got))
	}

	e.s.Want(nil, nil)
	if _, ok := e.metric(t, "egressd_client_cert_expiry_timestamp_seconds", "secret", name); ok {
		t.Errorf("expiry metric kept after the secret is no longer wanted")
	}
	if len(e.s.Secrets()) != 0 {
		t.Errorf("Secrets() after Want(nil, nil): %q", secretNames(e.s.Secrets()))
	}
}

func TestStoresShareRegistry(t *testing.T) {
	e := newEnv(t, time.Hour)
	other := NewStore(StoreConfig{Registerer: e.reg, Now: func() time.Time { return t0 }})
	a := mint(t, spec{cn: "shared"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	if errs := other.Want([]Source{src}, nil); errs != nil {
		t.Fatal(errs)
	}
	if v, ok := e.metric(t, "egressd_client_cert_expiry_timestamp_seconds", "secret", ClientSecretName(src)); !ok || v != float64(a.cert.NotAfter.Unix()) {
		t.Errorf("second store's metric = %v, %v", v, ok)
	}
	if n := len(e.logs.All()); n != 0 {
		t.Errorf("registering twice logged %v", e.logs.All())
	}
}
