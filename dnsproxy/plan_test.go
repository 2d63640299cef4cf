package dnsproxy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// tcpEntries renders one TCP ServiceEntry without addresses per host (each
// on its own port, so they do not conflict), in the order given.
func tcpEntries(hosts ...string) string {
	var b strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: e%d, namespace: data}
spec:
  hosts: [%s]
  ports: [{number: %d, name: tcp, protocol: TCP}]
  resolution: DNS
`, i, h, 10000+i)
	}
	return b.String()
}

func vipOf(t *testing.T, s *Server, host string) string {
	t.Helper()
	m := ask(t, s, host+".", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("%s: %s %v", host, dns.RcodeToString[m.Rcode], m.Answer)
	}
	return m.Answer[0].(*dns.A).A.String()
}

// TestVIPStable: a host keeps its VIP across SetAllowlist calls, across
// servers (replicas, restarts) and whatever the order of the entries.
func TestVIPStable(t *testing.T) {
	newServer := func() *Server {
		s, err := New(Config{GatewayIPs: []netip.Addr{gw4}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := newServer()
	s1.SetAllowlist(compileYAML(t, "a.yaml", tcpEntries("db.example.test", "queue.example.test")))
	db := vipOf(t, s1, "db.example.test")
	if !DefaultVIPRange.Contains(netip.MustParseAddr(db)) {
		t.Fatalf("VIP %s outside %s", db, DefaultVIPRange)
	}
	for i := 0; i < 3; i++ {
		if got := vipOf(t, s1, "db.example.test"); got != db {
			t.Fatalf("query %d: VIP %s, was %s", i, got, db)
		}
	}
	// Reload with more hosts, in another order.
	s1.SetAllowlist(compileYAML(t, "b.yaml", tcpEntries("zz.example.test", "queue.example.test", "db.example.test", "aa.example.test")))
	if got := vipOf(t, s1, "db.example.test"); got != db {
		t.Errorf("after reload: VIP %s, was %s", got, db)
	}
	// Another replica.
	s2 := newServer()
	s2.SetAllowlist(compileYAML(t, "c.yaml", tcpEntries("queue.example.test", "db.example.test")))
	if got := vipOf(t, s2, "db.example.test"); got != db {
		t.Errorf("other server: VIP %s, want %s", got, db)
	}
	if q1, q2 := vipOf(t, s1, "queue.example.test"), vipOf(t, s2, "queue.example.test"); q1 != q2 || q1 == db {
		t.Errorf("queue VIPs %s and %s (db %s)", q1, q2, db)
	}
}

// TestVIPCollisions: in a tiny range, colliding hosts are resolved by name
// order, whatever order they are given in, and a full range falls back to
// the gateway's address.
func TestVIPCollisions(t *testing.T) {
	r := netip.MustParsePrefix("240.240.0.0/29") // 6 usable slots
	const slots = 6
	// Find two names with the same home slot.
	var a, b string
	home := map[uint64]string{}
	for i := 0; a == ""; i++ {
		n := fmt.Sprintf("h%d.example.test", i)
		slot := homeSlot(n, slots)
		if prev, ok := home[slot]; ok {
			a, b = prev, n
			if b < a {
				a, b = b, a
			}
		}
		home[slot] = n
	}
	want := addOffset(r.Addr(), homeSlot(a, slots))
	got := allocateVIPs(r, []string{a, b})
	if got[a] != want || got[b] == want || !r.Contains(got[b]) {
		t.Errorf("sorted: %s=%s %s=%s; want %s to keep its home %s", a, got[a], b, got[b], a, want)
	}
	s, err := New(Config{GatewayIPs: []netip.Addr{gw4}, VIPRange: r})
	if err != nil {
		t.Fatal(err)
	}
	s.SetAllowlist(compileYAML(t, "x.yaml", tcpEntries(b, a)))
	if vipOf(t, s, a) != got[a].String() || vipOf(t, s, b) != got[b].String() {
		t.Errorf("server disagrees with allocateVIPs")
	}

	// Never the first or last address; a full range gives the gateway.
	names := []string{"a.t", "b.t", "c.t", "d.t", "e.t", "f.t", "g.t"}
	all := allocateVIPs(r, names)
	if len(all) != slots {
		t.Errorf("allocated %d, want %d", len(all), slots)
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range all {
		if ip == r.Addr() || ip == netip.MustParseAddr("240.240.0.7") || seen[ip] {
			t.Errorf("bad or duplicate VIP %s in %v", ip, all)
		}
		seen[ip] = true
	}
	s.SetAllowlist(compileYAML(t, "y.yaml", tcpEntries(names...)))
	if got := vipOf(t, s, "g.t"); got != gw4.String() {
		t.Errorf("range full: %s, want the gateway %s", got, gw4)
	}
}

// TestPlanHost: which answer each kind of entry gets, in both modes.
func TestPlanHost(t *testing.T) {
	a := loadAllowlist(t, "testdata/allowlist.yaml")
	want := map[Mode]map[string]string{
		ModeGateway: {
			"www.example.test": sourceGateway, "*.svc.example.test": sourceGateway,
			"static.example.test": sourceStatic, "cidr.example.test": sourceGateway,
			"db.example.test": sourceVIP, "mongo.example.test": sourceVIP,
			"ranged.example.test": sourceUpstream, "listed.example.test": sourceGateway,
		},
		ModeForward: {
			"www.example.test": sourceUpstream, "*.svc.example.test": sourceUpstream,
			"static.example.test": sourceStatic, "cidr.example.test": sourceUpstream,
			"db.example.test": sourceUpstream, "mongo.example.test": sourceUpstream,
			"ranged.example.test": sourceUpstream, "listed.example.test": sourceUpstream,
		},
	}
	for mode, hosts := range want {
		c, err := Config{Mode: mode, GatewayIPs: []netip.Addr{gw4}}.validate()
		if err != nil {
			t.Fatal(err)
		}
		snap := buildSnapshot(c, a)
		for host, src := range hosts {
			h := a.Match(strings.Replace(host, "*", "x", 1))
			if h == nil {
				t.Fatalf("%s not in fixture", host)
			}
			if got := snap.plans[h].source; got != src {
				t.Errorf("%s %s: %s, want %s", mode, host, got, src)
			}
		}
	}
	c, _ := Config{GatewayIPs: []netip.Addr{gw4}}.validate()
	listed := buildSnapshot(c, a).plans[a.Match("listed.example.test")].listed
	if fmt.Sprint(listed) != "[10.0.0.6/32]" {
		t.Errorf("listed %v, want the endpoint", listed)
	}
}
