package origination

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestMaterialRedactsKey prints a loaded Material every way fmt, JSON and
// zap can, and checks the key never shows.
func TestMaterialRedactsKey(t *testing.T) {
	dir := t.TempDir()
	c := newChain(t, "redact")
	src := credential(t, dir, "redact", map[string][]byte{
		"tls.crt": pemOf(c.leaf.certPEM(), c.inter.certPEM()), "tls.key": c.leaf.keyPEM(t), "ca.crt": c.root.certPEM(),
	})
	m, err := Load(src, dir, WantKeyPair|WantCA, t0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out = append(out, fmt.Sprintf(verb, m), fmt.Sprintf(verb, *m))
	}
	out = append(out, m.String(), m.GoString(), fmt.Sprint(m), fmt.Sprintln(*m),
		fmt.Sprintf("%v", struct{ M *Material }{m}), fmt.Sprintf("%+v", []Material{*m}))
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	log.Info("object", zap.Object("m", m))
	log.Info("any", zap.Any("m", m), zap.Any("v", *m))
	log.Info("stringer", zap.Stringer("m", m))
	for _, e := range logs.All() {
		out = append(out, fmt.Sprint(e.ContextMap()))
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(zapcore.Entry{Message: "m"}, []zap.Field{zap.Any("m", m)})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, buf.String())

	for _, s := range out {
		if leaks(s) {
			t.Errorf("output reveals the private key: %s", s)
		}
	}
	want := `origination.Material{subject="CN=redact client,O=egressd tests", issuer="CN=redact intermediate,O=egressd tests", notBefore=2031-03-01T11:00:00Z, notAfter=2031-05-30T12:00:00Z, chain=2 certificates, key=[REDACTED], ca=1 certificate}`
	if got := m.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(string(js), `"privateKey":"[REDACTED]"`) || !strings.Contains(string(js), `"subject":"CN=redact client,O=egressd tests"`) {
		t.Errorf("MarshalJSON = %s", js)
	}
	if got := fmt.Sprintf("%q", m); got != fmt.Sprintf("%q", want) {
		t.Errorf("%%q = %s", got)
	}
	if got := logs.All()[0].ContextMap()["m"].(map[string]any)["private_key"]; got != "[REDACTED]" {
		t.Errorf("MarshalLogObject private_key = %v", got)
	}

	ca, err := Load(Source{CAFile: filepath.Join(dir, "redact", "ca.crt")}, "", WantCA, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ca.String(), "origination.Material{ca=1 certificate}"; got != want {
		t.Errorf("CA-only String() = %s, want %s", got, want)
	}
}
