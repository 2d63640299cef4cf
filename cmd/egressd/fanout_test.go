package main

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
)

type holder struct{ got []*serviceentry.Allowlist }

func (h *holder) SetAllowlist(a *serviceentry.Allowlist) { h.got = append(h.got, a) }

func allowlistOf(t *testing.T, host string) *serviceentry.Allowlist {
	t.Helper()
	return serviceentry.CompileYAML("f.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: n}
spec:
  hosts: [`+host+`]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`))
}

// TestSnapshotFanout: a snapshot the gateway takes reaches every part; one
// it refuses reaches none, and the resolver goes back to the one in force.
func TestSnapshotFanout(t *testing.T) {
	resolver, dns := &holder{}, &holder{}
	var gatewayGot []*serviceentry.Allowlist
	fail := false
	f := &snapshotFanout{resolver: resolver, dns: dns, log: zap.NewNop(), gateway: func(_ context.Context, a *serviceentry.Allowlist) error {
		if fail {
			return errors.New("translation failed")
		}
		gatewayGot = append(gatewayGot, a)
		return nil
	}}
	first, second := allowlistOf(t, "a.example.com"), allowlistOf(t, "b.example.com")
	if !f.Update(context.Background(), first) || f.Current() != first || f.Since().IsZero() {
		t.Fatal("the first snapshot did not take effect")
	}
	fail = true
	if f.Update(context.Background(), second) {
		t.Fatal("a refused snapshot took effect")
	}
	if f.Current() != first {
		t.Error("the allowlist in force moved to the refused snapshot")
	}
	if len(dns.got) != 1 || dns.got[0] != first {
		t.Errorf("the DNS proxy got %v, want only the first", dns.got)
	}
	// The resolver saw the refused one before the gateway (it must know
	// the names of clusters about to arrive), then went back.
	if len(resolver.got) != 3 || resolver.got[0] != first || resolver.got[1] != second || resolver.got[2] != first {
		t.Errorf("the resolver got %v, want first, second, first", resolver.got)
	}
	if len(gatewayGot) != 1 {
		t.Errorf("the gateway took %d snapshots", len(gatewayGot))
	}
}
