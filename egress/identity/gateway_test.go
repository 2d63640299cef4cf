package identity

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeClock is a clock tests set.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// gatewayCert returns the chain and key of the gateway certificate secret.
func gatewayCert(t *testing.T, secrets []*tlsv3.Secret) (chain, key []byte) {
	t.Helper()
	if len(secrets) != 2 {
		t.Fatalf("%d secrets, want 2", len(secrets))
	}
	for _, s := range secrets {
		if err := s.ValidateAll(); err != nil {
			t.Errorf("secret %s: %v", s.Name, err)
		}
	}
	s := secrets[0]
	if s.Name != GatewayCertSecret || s.GetTlsCertificate() == nil {
		t.Fatalf("first secret %q, want %s with a TLS certificate", s.Name, GatewayCertSecret)
	}
	tc := s.GetTlsCertificate()
	return tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes()
}

func TestGatewaySecrets(t *testing.T) {
	l := writeIstioLayout(t)
	ca, err := Load(l.dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	core, logs := observer.New(zap.InfoLevel)
	g, err := NewGateway(GatewayConfig{CA: ca, Registerer: reg, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Principal(); p != "example.org/ns/egressd-system/sa/egress-gateway" {
		t.Errorf("Principal %q", p)
	}

	secrets := g.Secrets()
	chain, key := gatewayCert(t, secrets)
	leaf := verifyClient(t, chain, ca.BundlePEM(), time.Now())
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/ns/egressd-system/sa/egress-gateway" || len(leaf.DNSNames) != 0 {
		t.Errorf("SANs: URIs %v, DNS %v", leaf.URIs, leaf.DNSNames)
	}
	if n := len(parseChain(t, chain)); n != 2 {
		t.Errorf("chain of %d certificates; want the leaf and the intermediate", n)
	}
	checkKey(t, key, leaf)
	if d := time.Until(leaf.NotAfter); d < DefaultTTL-time.Minute || d > DefaultTTL {
		t.Errorf("lifetime %v, want %v", d, DefaultTTL)
	}

	b := secrets[1]
	if b.Name != TrustBundleSecret || b.GetValidationContext() == nil ||
		!bytes.Equal(b.GetValidationContext().GetTrustedCa().GetInlineBytes(), ca.BundlePEM()) {
		t.Errorf("second secret %q: %v; want %s trusting the bundle", b.Name, b, TrustBundleSecret)
	}
	if vc := b.GetValidationContext(); len(vc.GetMatchTypedSubjectAltNames()) != 0 {
		t.Error("the trust bundle secret sets names to match; they belong where it is used")
	}

	if got := testutil.ToFloat64(g.metrics.expiry); got != float64(leaf.NotAfter.Unix()) {
		t.Errorf("expiry metric %v, want %v", got, leaf.NotAfter.Unix())
	}
	if n, err := testutil.GatherAndCount(reg, "egressd_gateway_cert_expiry_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("registered series: %d, %v", n, err)
	}
	// A second gateway on the same registry shares the series.
	if _, err := NewGateway(GatewayConfig{CA: ca, Registerer: reg, Namespace: "other", ServiceAccount: "gw"}); err != nil {
		t.Fatal(err)
	}

	// Secrets returns a copy of the list.
	secrets[0] = nil
	if g.Secrets()[0] == nil {
		t.Error("Secrets shares its slice")
	}

	// Logs and formatting: identity and serial, no key.
	if e := logs.FilterMessage("gateway certificate issued").All(); len(e) != 1 || e[0].ContextMap()[keyPrincipal] != g.Principal() {
		t.Errorf("issue log: %v", e)
	}
	var all strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintln(&all, e.Message, e.ContextMap())
	}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		fmt.Fprintf(&all, verb+"\n", g)
	}
	if s := all.String(); strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, string(key[28:60])) {
		t.Errorf("key material in logs or formatting:\n%s", s)
	}
	if !strings.Contains(fmt.Sprint(g), "gateway identity example.org/ns/egressd-system/sa/egress-gateway") {
		t.Errorf("String %q", g)
	}
}

func TestGatewayConfig(t *testing.T) {
	ca, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGateway(GatewayConfig{CA: ca, Namespace: "egress", ServiceAccount: "gw", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if g.Principal() != "cluster.local/ns/egress/sa/gw" {
		t.Errorf("Principal %q", g.Principal())
	}
	chain, _ := gatewayCert(t, g.Secrets())
	if d := time.Until(parseChain(t, chain)[0].NotAfter); d > time.Hour || d < time.Hour-time.Minute {
		t.Errorf("lifetime %v, want 1h", d)
	}
	for name, tc := range map[string]struct {
		cfg     GatewayConfig
		wantErr string
	}{
		"no CA":         {GatewayConfig{}, "no CA"},
		"bad namespace": {GatewayConfig{CA: ca, Namespace: "Egress"}, `gateway identity: namespace "Egress"`},
		"bad sa":        {GatewayConfig{CA: ca, ServiceAccount: "gw_1"}, `service account "gw_1"`},
	} {
		if _, err := NewGateway(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v; want an error with %q", name, err, tc.wantErr)
		}
	}
}

// TestGatewayRenews: the certificate is renewed when half of its lifetime
// has passed, not before, and OnChange is called then.
func TestGatewayRenews(t *testing.T) {
	ca, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second)
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{t: t0}
		var changes atomic.Int32
		core, logs := observer.New(zap.InfoLevel)
		g, err := NewGateway(GatewayConfig{
			CA: ca, TTL: 24 * time.Hour, Now: clock.Now, Log: zap.New(core),
			OnChange: func() { changes.Add(1) },
		})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := gatewayCert(t, g.Secrets())
		leaf1 := parseChain(t, first)[0]

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		advance := func(to time.Time) {
			clock.Set(to)
			time.Sleep(2 * recheckInterval) // Run reads the clock again
			synctest.Wait()
		}

		advance(t0.Add(12*time.Hour - time.Second))
		if n := changes.Load(); n != 0 {
			t.Fatalf("renewed %d times before half life", n)
		}
		if c, _ := gatewayCert(t, g.Secrets()); !bytes.Equal(c, first) {
			t.Fatal("certificate changed before half life")
		}

		advance(t0.Add(12 * time.Hour))
		if n := changes.Load(); n != 1 {
			t.Fatalf("OnChange called %d times at half life, want 1", n)
		}
		second, key2 := gatewayCert(t, g.Secrets())
		leaf2 := verifyClient(t, second, ca.BundlePEM(), t0.Add(12*time.Hour))
		if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 || !leaf2.NotAfter.Equal(t0.Add(36*time.Hour)) {
			t.Errorf("renewed certificate: serial %x (was %x), NotAfter %v, want %v", leaf2.SerialNumber, leaf1.SerialNumber, leaf2.NotAfter, t0.Add(36*time.Hour))
		}
		checkKey(t, key2, leaf2)
		if got := testutil.ToFloat64(g.metrics.expiry); got != float64(leaf2.NotAfter.Unix()) {
			t.Errorf("expiry metric %v, want %v", got, leaf2.NotAfter.Unix())
		}
		if n := logs.FilterMessage("gateway certificate renewed").Len(); n != 1 {
			t.Errorf("%d renewal logs", n)
		}

		// The next renewal is at half of the new lifetime.
		advance(t0.Add(24*time.Hour - time.Second))
		if n := changes.Load(); n != 1 {
			t.Fatalf("renewed again too early (%d)", n)
		}
		advance(t0.Add(24 * time.Hour))
		if n := changes.Load(); n != 2 {
			t.Fatalf("second renewal: OnChange called %d times in all, want 2", n)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestGatewayRenewalFailure: when the CA can no longer issue, the current
// certificate stays, the failure is logged once (not at every retry), and
// OnChange is not called.
func TestGatewayRenewalFailure(t *testing.T) {
	root := mintCA(t, caSpec{cn: "root"})
	inter := mintCA(t, caSpec{cn: "inter", parent: root, notAfter: time.Now().Add(2 * time.Hour)})
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		FileCACert: certsPEM(inter), FileCAKey: keyPEM(t, inter.key), FileRootCert: certsPEM(root), FileCertChain: certsPEM(inter),
	})
	ca, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	synctest.Test(t, func(t *testing.T) {
		clock := &fakeClock{t: t0}
		var changes atomic.Int32
		core, logs := observer.New(zap.InfoLevel)
		g, err := NewGateway(GatewayConfig{CA: ca, Now: clock.Now, Log: zap.New(core), OnChange: func() { changes.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := gatewayCert(t, g.Secrets())
		// Capped at the CA's NotAfter.
		if na := parseChain(t, first)[0].NotAfter; !na.Equal(inter.cert.NotAfter) {
			t.Errorf("NotAfter %v, want the CA's %v", na, inter.cert.NotAfter)
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()

		clock.Set(inter.cert.NotAfter.Add(time.Second))
		time.Sleep(10 * recheckInterval) // ten retries
		synctest.Wait()
		if n := changes.Load(); n != 0 {
			t.Errorf("OnChange called %d times", n)
		}
		if c, _ := gatewayCert(t, g.Secrets()); !bytes.Equal(c, first) {
			t.Error("certificate changed")
		}
		failed := logs.FilterMessage("gateway certificate renewal failed; serving the current one").All()
		if len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0].ContextMap()["error"]), "the CA expired") {
			t.Errorf("failure logs: %v", failed)
		}

		cancel()
		<-done
	})
}
