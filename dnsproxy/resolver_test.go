package dnsproxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// newResolver is a gateway resolver over the fixture allowlist, whose own
// address (Guard.Self) is 192.0.2.77, with a ledger.
func newResolver(t *testing.T, outbound serviceentry.OutboundMode, allow ...string) (*Server, *decisions, *netguard.Ledger) {
	t.Helper()
	up := startFake(t, zoneHandler)
	ledger := netguard.NewLedger(time.Minute, 100)
	allowed, err := netguard.ParsePrefixes(allow)
	if err != nil {
		t.Fatal(err)
	}
	s, d := newTestServer(t, Config{
		Mode:      ModeResolver,
		Upstreams: []string{up.addr},
		Outbound:  outbound,
		Guard:     &netguard.Policy{Allow: allowed, Self: []netip.Prefix{netip.MustParsePrefix("192.0.2.77/32")}},
		Ledger:    ledger,
		// --dns-allow-private is for clients; the gateway always guards.
		AllowPrivate: true,
	})
	return s, d, ledger
}

// TestResolverMode: the gateway's own lookups. Names of the allowlist
// (hosts and endpoint names) are resolved, with every address checked; a
// name left without addresses is NOERROR and empty; the refusal is in the
// ledger, not a decision.
func TestResolverMode(t *testing.T) {
	s, d, ledger := newResolver(t, serviceentry.RegistryOnly)
	runHandlerCases(t, s, d, map[string]handlerCase{
		"allowed host":                    {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.10"}},
		"allowed host, AAAA":              {name: "www.example.test.", qtype: dns.TypeAAAA, want: []string{"AAAA 2001:db8::10"}},
		"wildcard":                        {name: "a.svc.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.20"}},
		"endpoint name":                   {name: "backend.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.50"}},
		"loopback: no address":            {name: "rebind.example.test.", qtype: dns.TypeA},
		"endpoint to loopback":            {name: "loop-backend.example.test.", qtype: dns.TypeA},
		"metadata: no address":            {name: "metadata.example.test.", qtype: dns.TypeA},
		"mixed: public kept":              {name: "mixed.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.40"}},
		"listed endpoint":                 {name: "listed.example.test.", qtype: dns.TypeA, want: []string{"A 10.0.0.6"}},
		"6to4 forms dropped":              {name: "sixtofour.example.test.", qtype: dns.TypeAAAA, want: []string{"AAAA 2002:808:808::1"}},
		"unlisted name refused":           {name: "evil.example.net.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		"no pass-through zones":           {name: "kube-dns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		"an address, under REGISTRY_ONLY": {name: "127.0.0.1.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		"only addresses are asked for":    {name: "www.example.test.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused},
	})
	now := time.Now()
	r, ok := ledger.Lookup("rebind.example.test", now)
	if !ok || r.Reason() != vocab.ReasonBlockedAddress || r.Kept != 0 || r.ServiceEntry != "web/rebind" ||
		r.Detail() != "rebind.example.test resolved to 127.0.0.1 (loopback); the gateway does not connect there" {
		t.Errorf("ledger for rebind: %+v %v", r, ok)
	}
	if r, ok := ledger.Lookup("loop-backend.example.test", now); !ok || r.ServiceEntry != "web/backends" {
		t.Errorf("ledger for an endpoint name: %+v %v", r, ok)
	}
	if r, ok := ledger.Lookup("mixed.example.test", now); !ok || r.Kept != 1 {
		t.Errorf("ledger for mixed: %+v %v", r, ok)
	}
	if _, ok := ledger.Lookup("www.example.test", now); ok {
		t.Error("a clean name must not be in the ledger")
	}
}

// TestResolverForgetsRebinding: a name that resolves cleanly again is
// forgotten by the ledger.
func TestResolverForgetsRebinding(t *testing.T) {
	s, _, ledger := newResolver(t, serviceentry.RegistryOnly)
	ledger.Refuse(netguard.Refusal{Name: "www.example.test", At: time.Now()})
	ask(t, s, "www.example.test.", dns.TypeA)
	if _, ok := ledger.Lookup("www.example.test", time.Now()); ok {
		t.Error("still refused after a clean answer")
	}
}

// TestResolverSelfAndAllowed: the gateway's own address is refused even
// inside an allowed range (forwarding_loop); allowed ranges pass.
func TestResolverSelfAndAllowed(t *testing.T) {
	s, d, ledger := newResolver(t, serviceentry.AllowAny, "10.0.0.0/8", "192.0.2.0/24")
	runHandlerCases(t, s, d, map[string]handlerCase{
		"allowed range":              {name: "private.example.test.", qtype: dns.TypeA, want: []string{"A 10.0.0.5"}},
		"the gateway itself":         {name: "gateway.example.test.", qtype: dns.TypeA},
		"unlisted under ALLOW_ANY":   {name: "evil.example.net.", qtype: dns.TypeA, want: []string{"A 192.0.2.66"}},
		"public address as a name":   {name: "93.184.216.34.", qtype: dns.TypeA, want: []string{"A 93.184.216.34"}},
		"loopback address as a name": {name: "127.0.0.1.", qtype: dns.TypeA},
		"the gateway's address":      {name: "192.0.2.77.", qtype: dns.TypeA},
		"an IPv4 address, AAAA":      {name: "93.184.216.34.", qtype: dns.TypeAAAA},
	})
	for name, reason := range map[string]vocab.Reason{
		"gateway.example.test": vocab.ReasonForwardingLoop,
		"192.0.2.77":           vocab.ReasonForwardingLoop,
		"127.0.0.1":            vocab.ReasonBlockedAddress,
	} {
		if r, ok := ledger.Lookup(name, time.Now()); !ok || r.Reason() != reason {
			t.Errorf("ledger for %s: %+v %v, want %s", name, r, ok, reason)
		}
	}
}
