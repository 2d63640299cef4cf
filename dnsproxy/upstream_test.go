package dnsproxy

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// bigHandler answers www.example.test TXT with 60 records (about 3 KB):
// over UDP it sets TC and sends none, as a server does when the answer does
// not fit; over TCP it sends them all.
func bigHandler(network string, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	if network == "udp" {
		m.Truncated = true
		return m
	}
	for i := 0; i < 60; i++ {
		m.Answer = append(m.Answer, mustRR(fmt.Sprintf(`www.example.test. 300 IN TXT "record %02d %s"`, i, "padding-padding-padding")))
	}
	return m
}

// TestUpstreamFailover: upstreams are tried in order; one that does not
// answer, or answers SERVFAIL, hands over to the next.
func TestUpstreamFailover(t *testing.T) {
	good := startFake(t, zoneHandler)
	servfail := startFake(t, func(_ string, r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		return m.SetRcode(r, dns.RcodeServerFailure)
	})
	dead := deadAddr(t)
	s, d := newTestServer(t, Config{
		Mode:      ModeForward,
		Upstreams: []string{dead, servfail.addr, good.addr},
		Timeout:   200 * time.Millisecond,
	})
	start := time.Now()
	m := ask(t, s, "www.example.test.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("got %s %v, want the good upstream's answer", dns.RcodeToString[m.Rcode], m.Answer)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second {
		t.Errorf("took %s: want one timeout (200ms) for the dead upstream", el)
	}
	if servfail.count() != 1 || good.count() != 1 {
		t.Errorf("servfail upstream asked %d times, good %d; want 1 and 1", servfail.count(), good.count())
	}
	if len(d.all()) != 0 {
		t.Errorf("decisions %+v, want none", d.all())
	}
}

// TestUpstreamsDown: when every upstream fails the client gets SERVFAIL
// with EDE 22 and a decision is recorded; nothing is cached, so the next
// query tries again.
func TestUpstreamsDown(t *testing.T) {
	s, d := newTestServer(t, Config{
		Mode:      ModeForward,
		Upstreams: []string{deadAddr(t), deadAddr(t)},
		Timeout:   100 * time.Millisecond,
	})
	for _, name := range []string{"www.example.test.", "kube-dns.svc.cluster.local."} {
		d.reset()
		m := ask(t, s, name, dns.TypeA, withEDNS(1232, false))
		if m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
			t.Fatalf("%s: got %s %v, want SERVFAIL", name, dns.RcodeToString[m.Rcode], m.Answer)
		}
		if e := edeOf(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeNoReachableAuthority {
			t.Errorf("%s: EDE %v, want 22", name, e)
		}
		got := d.all()
		if len(got) != 1 || got[0].Reason != vocab.ReasonUpstreamError || got[0].Verdict != vocab.VerdictDeny || got[0].Detail == "" {
			t.Errorf("%s: decisions %+v, want one upstream_error", name, got)
		}
	}
	t.Run("no upstreams", func(t *testing.T) {
		s, _ := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}})
		if m := ask(t, s, "www.example.test.", dns.TypeTXT); m.Rcode != dns.RcodeServerFailure {
			t.Errorf("TXT without upstreams: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
		}
		if m := ask(t, s, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
			t.Errorf("A in gateway mode needs no upstream: %s", dns.RcodeToString[m.Rcode])
		}
	})
}

// TestTruncatedRetriesOverTCP: a truncated UDP answer is asked again over
// TCP; a TCP client gets it all, a UDP client as much as fits, with TC.
func TestTruncatedRetriesOverTCP(t *testing.T) {
	up := startFake(t, bigHandler)
	s, _ := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}})

	m := ask(t, s, "www.example.test.", dns.TypeTXT, overTCP())
	if len(m.Answer) != 60 || m.Truncated {
		t.Fatalf("TCP client: %d answers (tc=%v), want 60", len(m.Answer), m.Truncated)
	}
	var nets []string
	for _, q := range up.seen() {
		nets = append(nets, q.network)
	}
	if fmt.Sprint(nets) != "[udp tcp]" {
		t.Errorf("upstream saw %v, want [udp tcp]", nets)
	}

	m = ask(t, s, "www.example.test.", dns.TypeTXT) // from the cache, to a UDP client without EDNS
	if !m.Truncated || len(m.Answer) == 0 || len(m.Answer) >= 60 {
		t.Errorf("UDP client: %d answers (tc=%v), want a truncated part", len(m.Answer), m.Truncated)
	}
	m.Compress = true
	if b, _ := m.Pack(); len(b) > dns.MinMsgSize {
		t.Errorf("UDP reply of %d bytes to a client without EDNS", len(b))
	}
	m = ask(t, s, "www.example.test.", dns.TypeTXT, withEDNS(4096, false))
	if m.Truncated || len(m.Answer) != 60 {
		t.Errorf("UDP client with 4096 bytes: %d answers (tc=%v), want 60", len(m.Answer), m.Truncated)
	}
	if up.count() != 2 {
		t.Errorf("upstream asked %d times, want 2 (then cached)", up.count())
	}
}

// TestEDNSPassthrough: the client's UDP size and DO bit go upstream; the
// reply has OPT only when the query had one, and keeps upstream EDEs.
func TestEDNSPassthrough(t *testing.T) {
	up := startFake(t, func(n string, r *dns.Msg) *dns.Msg {
		m := zoneHandler(n, r)
		if o := m.IsEdns0(); o != nil {
			o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer, ExtraText: "upstream says"})
		}
		return m
	})
	s, _ := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}, CacheSize: -1})

	m := ask(t, s, "www.example.test.", dns.TypeA, withEDNS(3000, true))
	q := up.seen()[0]
	if !q.edns || q.udpSize != 3000 || !q.do {
		t.Errorf("upstream query %+v, want EDNS size 3000 with DO", q)
	}
	opt := m.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != ednsSize {
		t.Fatalf("reply OPT %v, want DO and size %d", opt, ednsSize)
	}
	if e := edeOf(m); e == nil || e.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("upstream EDE lost: %v", e)
	}

	m = ask(t, s, "www.example.test.", dns.TypeA)
	if q := up.seen()[1]; q.edns {
		t.Errorf("upstream query %+v, want no EDNS for a client without", q)
	}
	if m.IsEdns0() != nil {
		t.Errorf("reply has OPT for a client without EDNS")
	}
}

// TestCacheThroughServer: answers are cached per question and DO bit,
// negative answers too, and TTLs are aged.
func TestCacheThroughServer(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, _ := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}})
	now := time.Now()
	s.fwd.cache.now = func() time.Time { return now }

	ask(t, s, "www.example.test.", dns.TypeA)
	now = now.Add(100 * time.Second)
	m := ask(t, s, "WWW.example.test.", dns.TypeA)
	if up.count() != 1 {
		t.Fatalf("upstream asked %d times, want 1", up.count())
	}
	if ttl := m.Answer[0].Header().Ttl; ttl != 200 {
		t.Errorf("cached TTL %d, want 300-100", ttl)
	}
	ask(t, s, "www.example.test.", dns.TypeA, withEDNS(1232, true))
	if up.count() != 2 {
		t.Errorf("DO query served from the non-DO cache entry")
	}
	now = now.Add(201 * time.Second)
	ask(t, s, "www.example.test.", dns.TypeA)
	if up.count() != 3 {
		t.Errorf("expired entry served")
	}

	// NXDOMAIN with SOA (TTL 3600, MINIMUM 120): kept for 60s at most.
	ask(t, s, "nope.svc.example.test.", dns.TypeA)
	ask(t, s, "nope.svc.example.test.", dns.TypeA)
	if up.count() != 4 {
		t.Errorf("negative answer not cached")
	}
	now = now.Add(61 * time.Second)
	ask(t, s, "nope.svc.example.test.", dns.TypeA)
	if up.count() != 5 {
		t.Errorf("negative answer cached beyond 60s")
	}
}

// TestCache: the LRU bound and TTL rules.
func TestCache(t *testing.T) {
	now := time.Now()
	c := newCache(2)
	c.now = func() time.Time { return now }
	msg := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		return m
	}
	k := func(name string) cacheKey { return cacheKey{name: name, qtype: dns.TypeA, qclass: dns.ClassINET} }
	c.put(k("a."), msg("a."), time.Minute)
	c.put(k("b."), msg("b."), time.Minute)
	if _, _, ok := c.get(k("a.")); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(k("c."), msg("c."), time.Minute)
	if _, _, ok := c.get(k("b.")); ok {
		t.Error("b should be evicted (least recently used)")
	}
	if _, _, ok := c.get(k("a.")); !ok {
		t.Error("a evicted")
	}
	if c.len() != 2 {
		t.Errorf("len %d, want 2", c.len())
	}
	now = now.Add(30 * time.Second)
	if _, age, ok := c.get(k("c.")); !ok || age != 30*time.Second {
		t.Errorf("c: ok=%v age=%s", ok, age)
	}
	now = now.Add(30 * time.Second)
	if _, _, ok := c.get(k("c.")); ok {
		t.Error("c served after its TTL")
	}

	soa := "example. 300 IN SOA ns.example. admin.example. 1 3600 600 86400 %d"
	ttlCases := map[string]struct {
		rcode int
		rrs   []string
		ns    []string
		tc    bool
		want  time.Duration
	}{
		"lowest answer TTL":       {rrs: []string{"a. 300 IN CNAME b.", "b. 30 IN A 192.0.2.1"}, want: 30 * time.Second},
		"capped at an hour":       {rrs: []string{"a. 86400 IN A 192.0.2.1"}, want: time.Hour},
		"zero TTL not cached":     {rrs: []string{"a. 0 IN A 192.0.2.1"}, want: 0},
		"NXDOMAIN: SOA minimum":   {rcode: dns.RcodeNameError, ns: []string{fmt.Sprintf(soa, 10)}, want: 10 * time.Second},
		"NXDOMAIN: capped at 60s": {rcode: dns.RcodeNameError, ns: []string{fmt.Sprintf(soa, 900)}, want: time.Minute},
		"NODATA: SOA":             {ns: []string{fmt.Sprintf(soa, 45)}, want: 45 * time.Second},
		"NXDOMAIN without SOA":    {rcode: dns.RcodeNameError, want: 0},
		"SERVFAIL":                {rcode: dns.RcodeServerFailure, want: 0},
		"truncated":               {rrs: []string{"a. 300 IN A 192.0.2.1"}, tc: true, want: 0},
	}
	for name, tc := range ttlCases {
		m := new(dns.Msg)
		m.Rcode, m.Truncated = tc.rcode, tc.tc
		for _, s := range tc.rrs {
			m.Answer = append(m.Answer, mustRR(s))
		}
		for _, s := range tc.ns {
			m.Ns = append(m.Ns, mustRR(s))
		}
		if got := cacheTTL(m); got != tc.want {
			t.Errorf("%s: cacheTTL %s, want %s", name, got, tc.want)
		}
	}
}
