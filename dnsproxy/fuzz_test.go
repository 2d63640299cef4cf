package dnsproxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/serviceentry/netguard"
)

// fuzzSeeds are packed queries: valid ones for every path of the handler,
// and odd ones (several questions, other classes and opcodes, EDNS
// versions and options, escaped and long names).
func fuzzSeeds() [][]byte {
	var out [][]byte
	add := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	q := func(name string, t uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		return m
	}
	for _, name := range []string{
		"www.example.test.", "a.svc.example.test.", "static.example.test.", "db.example.test.",
		"ranged.example.test.", "rebind.example.test.", "mixed.example.test.", "alias.example.test.",
		"evil.example.net.", "kube-dns.svc.cluster.local.", "svc.example.test.", ".",
		`x.a\.svc.example.test.`, `www\000.example.test.`, "WWW.EXAMPLE.TEST.",
		strings.Repeat("a.", 120) + "example.test.",
	} {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeHTTPS, dns.TypeANY, dns.TypeMX, dns.TypeCNAME} {
			add(q(name, t))
		}
	}
	m := q("www.example.test.", dns.TypeA)
	m.SetEdns0(4096, true)
	add(m)
	m = q("evil.example.net.", dns.TypeA)
	m.SetEdns0(512, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option,
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("192.0.2.0").AsSlice()},
		&dns.EDNS0_EDE{InfoCode: 15, ExtraText: "client-sent"})
	add(m)
	m = q("www.example.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	add(m)
	m = q("www.example.test.", dns.TypeA)
	m.Question = append(m.Question, dns.Question{Name: "evil.example.net.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	add(m)
	m = q("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	add(m)
	m = q("example.test.", dns.TypeAXFR)
	add(m)
	m = q("example.test.", dns.TypeSOA)
	m.Opcode = dns.OpcodeUpdate
	add(m)
	m = q("www.example.test.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{mustRR("www.example.test. 1 IN A 127.0.0.1")}
	add(m)
	m = q("www.example.test.", dns.TypeA)
	m.Question = nil
	add(m)
	return out
}

// FuzzServeDNS feeds any message a client can send to the handler, in
// gateway mode (no upstream) and in forward mode (a fake upstream), over
// UDP and TCP. The handler must not panic, must write exactly one reply
// with the query's id, must fit a UDP reply into what the client can take,
// and must never give an address to a name it does not allow.
func FuzzServeDNS(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // compression loop
	f.Add([]byte{0, 1})                                                       // short header

	up := startFake(f, zoneHandler)
	gateway, _ := newTestServer(f, Config{GatewayIPs: []netip.Addr{gw4, gw6}})
	forward, _ := newTestServer(f, Config{Mode: ModeForward, Upstreams: []string{up.addr}, Timeout: time.Second})
	resolver, _ := newTestServer(f, Config{Mode: ModeResolver, Upstreams: []string{up.addr}, Timeout: time.Second,
		Guard: &netguard.Policy{Self: []netip.Prefix{netip.MustParsePrefix("192.0.2.77/32")}}, Ledger: netguard.NewLedger(0, 0)})
	servers := []*Server{gateway, forward, resolver}

	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Skip("not a DNS message")
		}
		for _, s := range servers {
			for _, network := range []string{"udp", "tcp"} {
				w := newRecorder(network)
				s.ServeDNS(w, m)
				if len(w.msgs) != 1 {
					t.Fatalf("%s %s: %d replies, want 1", s.cfg.Mode, network, len(w.msgs))
				}
				r := w.msgs[0]
				if r.Id != m.Id || !r.Response {
					t.Fatalf("reply id %d response %v, want id %d", r.Id, r.Response, m.Id)
				}
				if network == "udp" {
					limit := dns.MinMsgSize
					if o := m.IsEdns0(); o != nil {
						limit = max(int(o.UDPSize()), dns.MinMsgSize)
					}
					r.Compress = true
					if packed, err := r.Pack(); err == nil && len(packed) > limit {
						t.Fatalf("UDP reply of %d bytes, client takes %d", len(packed), limit)
					}
				}
				checkNoUnlistedAddress(t, s, m, r)
				if s.cfg.Mode == ModeResolver {
					checkGuarded(t, s, r)
				}
			}
		}
	})
}

// checkNoUnlistedAddress fails when r answers addresses for a name that is
// neither allowed nor in a pass-through zone.
func checkNoUnlistedAddress(t *testing.T, s *Server, q, r *dns.Msg) {
	t.Helper()
	if len(q.Question) != 1 {
		if len(r.Answer) != 0 {
			t.Fatalf("answers %v to a query with %d questions", r.Answer, len(q.Question))
		}
		return
	}
	name := dns.CanonicalName(q.Question[0].Name)
	snap := s.snap.Load()
	if s.cfg.Mode != ModeResolver && s.passthrough(name) {
		return
	}
	allowed := !strings.Contains(name, `\`) && (snap.allow.Match(name) != nil || snap.endpoints[name] != nil)
	for _, rr := range r.Answer {
		switch rr.Header().Rrtype {
		case dns.TypeA, dns.TypeAAAA:
			if !allowed {
				t.Fatalf("address %s for unlisted name %q", rr, name)
			}
		}
	}
}

// checkGuarded fails when the gateway resolver hands out an address the
// guard refuses (the fake zone's loopback, private and metadata answers,
// and the gateway's own address); listed addresses are the zone's
// listed.example.test and ranged.example.test.
func checkGuarded(t *testing.T, s *Server, r *dns.Msg) {
	t.Helper()
	for _, rr := range append(append(append([]dns.RR(nil), r.Answer...), r.Ns...), r.Extra...) {
		addr, ok := addressOf(rr)
		if !ok {
			continue
		}
		name := dns.CanonicalName(rr.Header().Name)
		if name == "listed.example.test." || name == "ranged.example.test." {
			continue
		}
		if v := s.cfg.Guard.Check(addr, nil); !v.Allowed {
			t.Fatalf("the gateway resolver handed out %s for %s", v, name)
		}
	}
}
