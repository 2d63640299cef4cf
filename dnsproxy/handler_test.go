package dnsproxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// handlerCase is one query and what the handler must answer.
type handlerCase struct {
	name  string
	qtype uint16
	opts  []queryOpt
	rcode int
	want  []string // answers, as rrValue renders them
	ede   uint16   // expected EDE info code; 0: none
	// reasons of the decisions recorded, in order.
	reasons []vocab.Reason
}

func runHandlerCases(t *testing.T, s *Server, d *decisions, cases map[string]handlerCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d.reset()
			m := ask(t, s, tc.name, tc.qtype, tc.opts...)
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if diff := cmp.Diff(tc.want, answers(m)); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			e := edeOf(m)
			switch {
			case tc.ede == 0 && e != nil:
				t.Errorf("unexpected EDE %s", e)
			case tc.ede != 0 && e == nil:
				t.Errorf("no EDE, want code %d", tc.ede)
			case tc.ede != 0 && e.InfoCode != tc.ede:
				t.Errorf("EDE %s, want code %d", e, tc.ede)
			}
			var got []vocab.Reason
			for _, x := range d.all() {
				got = append(got, x.Reason)
			}
			if diff := cmp.Diff(tc.reasons, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

func vipFor(t *testing.T, host string) string {
	t.Helper()
	// The fixture's hosts that get a VIP, sorted by name.
	vips := allocateVIPs(DefaultVIPRange, []string{"db.example.test", "mongo.example.test"})
	ip, ok := vips[host]
	if !ok {
		t.Fatalf("no VIP for %s", host)
	}
	return ip.String()
}

// TestGatewayMode: allowed names get the gateway's addresses (or the
// ServiceEntry's own, or a VIP), unlisted names NXDOMAIN with EDE 15 and a
// decision, other types are forwarded without address glue.
func TestGatewayMode(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4, gw6}, Upstreams: []string{up.addr}})
	edns := []queryOpt{withEDNS(1232, false)}
	runHandlerCases(t, s, d, map[string]handlerCase{
		"exact A":                {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
		"exact AAAA":             {name: "www.example.test.", qtype: dns.TypeAAAA, want: []string{"AAAA 2001:db8:ffff::1"}},
		"any case":               {name: "WWW.Example.TEST.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
		"wildcard":               {name: "a.svc.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
		"wildcard, deeper":       {name: "x.y.svc.example.test.", qtype: dns.TypeA, opts: edns, want: []string{"A 198.51.100.1"}},
		"ANY":                    {name: "www.example.test.", qtype: dns.TypeANY, want: []string{"A 198.51.100.1", "AAAA 2001:db8:ffff::1"}},
		"CNAME: none":            {name: "www.example.test.", qtype: dns.TypeCNAME},
		"HTTPS: none":            {name: "www.example.test.", qtype: dns.TypeHTTPS},
		"SVCB: none":             {name: "a.svc.example.test.", qtype: dns.TypeSVCB},
		"static addresses A":     {name: "static.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.99"}},
		"static addresses AAAA":  {name: "static.example.test.", qtype: dns.TypeAAAA, want: []string{"AAAA 2001:db8::99"}},
		"static range: gateway":  {name: "cidr.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
		"TCP: VIP":               {name: "db.example.test.", qtype: dns.TypeA, want: []string{"A " + vipFor(t, "db.example.test")}},
		"MONGO: VIP":             {name: "mongo.example.test.", qtype: dns.TypeA, want: []string{"A " + vipFor(t, "mongo.example.test")}},
		"TCP VIP: no AAAA":       {name: "db.example.test.", qtype: dns.TypeAAAA},
		"TCP range: upstream":    {name: "ranged.example.test.", qtype: dns.TypeA, want: []string{"A 10.20.1.1"}},
		"TXT forwarded":          {name: "static.example.test.", qtype: dns.TypeTXT, want: []string{"TXT static txt"}},
		"TXT upstream NXDOMAIN":  {name: "b.svc.example.test.", qtype: dns.TypeTXT},
		"MX forwarded, no glue":  {name: "www.example.test.", qtype: dns.TypeMX, want: []string{"MX"}},
		"pass-through zone":      {name: "kube-dns.svc.cluster.local.", qtype: dns.TypeA, want: []string{"A 10.96.0.10"}},
		"pass-through, any case": {name: "KUBE-DNS.svc.Cluster.Local.", qtype: dns.TypeA, want: []string{"A 10.96.0.10"}},
		"denied, EDNS": {name: "evil.example.net.", qtype: dns.TypeA, opts: edns,
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"denied, no EDNS": {name: "evil.example.net.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"denied TXT": {name: "evil.example.net.", qtype: dns.TypeTXT, opts: edns,
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"wildcard does not cover its suffix": {name: "svc.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"unlisted sibling": {name: "api.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"escaped dot is no label boundary": {name: `x.a\.svc.example.test.`, qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"suffix lookalike": {name: "www.example.test.evil.net.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"pass-through lookalike": {name: "evilcluster.local.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
	})

	t.Run("owner name as asked", func(t *testing.T) {
		m := ask(t, s, "WWW.Example.TEST.", dns.TypeA)
		if got := m.Answer[0].Header().Name; got != "WWW.Example.TEST." {
			t.Errorf("owner %q, want the name as asked", got)
		}
		if m.Question[0].Name != "WWW.Example.TEST." {
			t.Errorf("question %q, want the name as asked", m.Question[0].Name)
		}
		if ttl := m.Answer[0].Header().Ttl; ttl != answerTTL {
			t.Errorf("TTL %d, want %d", ttl, answerTTL)
		}
		if !m.Authoritative || !m.RecursionAvailable {
			t.Errorf("want AA and RA on a synthesised answer: %v", m.MsgHdr)
		}
	})
	t.Run("MX glue is stripped", func(t *testing.T) {
		m := ask(t, s, "www.example.test.", dns.TypeMX)
		if len(m.Extra) != 0 {
			t.Errorf("additional section %v, want the glue removed", m.Extra)
		}
	})
}

// TestGatewayModeOneFamily: a family without gateway addresses gets an
// empty NOERROR answer, not NXDOMAIN (which would hide the other family).
func TestGatewayModeOneFamily(t *testing.T) {
	s, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"A":    {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
		"AAAA": {name: "www.example.test.", qtype: dns.TypeAAAA},
	})
}

// TestForwardMode: allowed names resolve upstream with the real records;
// the rebinding guard drops private addresses unless listed; a CNAME chain
// to an unlisted name is answered and recorded.
func TestForwardMode(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}})
	edns := []queryOpt{withEDNS(1232, false)}
	runHandlerCases(t, s, d, map[string]handlerCase{
		"exact A":              {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.10"}},
		"exact AAAA":           {name: "www.example.test.", qtype: dns.TypeAAAA, want: []string{"AAAA 2001:db8::10"}},
		"wildcard":             {name: "a.svc.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.20"}},
		"MX keeps public glue": {name: "www.example.test.", qtype: dns.TypeMX, want: []string{"MX"}},
		"static addresses":     {name: "static.example.test.", qtype: dns.TypeA, want: []string{"A 192.0.2.99"}},
		"no VIP in forward mode, upstream NXDOMAIN": {name: "db.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError},
		"loopback blocked": {name: "rebind.example.test.", qtype: dns.TypeA, opts: edns,
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
		"RFC 1918 blocked": {name: "private.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
		"metadata address blocked": {name: "metadata.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
		"blocked address dropped, public kept": {name: "mixed.example.test.", qtype: dns.TypeA,
			want: []string{"A 192.0.2.40"}, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
		"listed endpoint passes": {name: "listed.example.test.", qtype: dns.TypeA, want: []string{"A 10.0.0.6"}},
		"listed range passes":    {name: "ranged.example.test.", qtype: dns.TypeA, want: []string{"A 10.20.1.1"}},
		"CNAME to unlisted host": {name: "alias.example.test.", qtype: dns.TypeA,
			want: []string{"CNAME cdn.unlisted.test.", "A 192.0.2.30"}, reasons: []vocab.Reason{vocab.ReasonCNAMEToUnlisted}},
		"denied": {name: "evil.example.net.", qtype: dns.TypeA, opts: edns,
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"pass-through is not guarded": {name: "kube-dns.svc.cluster.local.", qtype: dns.TypeA, want: []string{"A 10.96.0.10"}},
	})

	t.Run("decision fields", func(t *testing.T) {
		d.reset()
		ask(t, s, "alias.example.test.", dns.TypeA)
		ask(t, s, "Rebind.example.test.", dns.TypeA)
		got := d.all()
		if len(got) != 2 {
			t.Fatalf("decisions %+v, want 2", got)
		}
		for i := range got {
			if got[i].Time.IsZero() {
				t.Errorf("decision %d has no time", i)
			}
			got[i].Time = time.Time{}
		}
		src := netip.MustParseAddrPort("127.0.0.2:40000")
		want := []Decision{
			{Layer: "dns", Source: src, Host: "alias.example.test", QType: "A", Verdict: "allow",
				Reason: vocab.ReasonCNAMEToUnlisted, ServiceEntry: "web/misc", Detail: "alias.example.test -> cdn.unlisted.test"},
			{Layer: "dns", Source: src, Host: "rebind.example.test", QType: "A", Verdict: "deny",
				Reason: vocab.ReasonBlockedAddress, ServiceEntry: "web/rebind", Detail: "dropped 127.0.0.1 (loopback)"},
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
	})
}

// TestRefusedRcode: REFUSED instead of NXDOMAIN, for unlisted names and for
// answers the guard empties.
func TestRefusedRcode(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}, RefuseRcode: dns.RcodeRefused})
	edns := []queryOpt{withEDNS(1232, false)}
	runHandlerCases(t, s, d, map[string]handlerCase{
		"unlisted": {name: "evil.example.net.", qtype: dns.TypeA, opts: edns,
			rcode: dns.RcodeRefused, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"blocked": {name: "rebind.example.test.", qtype: dns.TypeA, opts: edns,
			rcode: dns.RcodeRefused, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
	})
}

// TestAllowPrivate: with the guard off, private answers pass.
func TestAllowPrivate(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}, AllowPrivate: true})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"loopback": {name: "rebind.example.test.", qtype: dns.TypeA, want: []string{"A 127.0.0.1"}},
	})
}

// TestAllowAny: unlisted names are forwarded unchanged under ALLOW_ANY and
// counted, without a refusal.
func TestAllowAny(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}, Upstreams: []string{up.addr}, Outbound: serviceentry.AllowAny})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"unlisted forwarded":   {name: "evil.example.net.", qtype: dns.TypeA, want: []string{"A 192.0.2.66"}},
		"listed still steered": {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
	})
}

// TestAudit: under AUDIT unlisted names are answered like ALLOW_ANY, and
// each is recorded and counted as audit-deny, not_in_registry.
func TestAudit(t *testing.T) {
	up := startFake(t, zoneHandler)
	reg := prometheus.NewRegistry()
	s, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}, Upstreams: []string{up.addr}, Outbound: serviceentry.Audit, Registerer: reg})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"unlisted forwarded and recorded": {name: "evil.example.net.", qtype: dns.TypeA, want: []string{"A 192.0.2.66"}, reasons: []vocab.Reason{vocab.ReasonNotInRegistry}},
		"listed still steered":            {name: "www.example.test.", qtype: dns.TypeA, want: []string{"A 198.51.100.1"}},
	})
	d.reset()
	ask(t, s, "evil.example.net.", dns.TypeAAAA)
	got := d.all()
	if len(got) != 1 || got[0].Verdict != vocab.VerdictAuditDeny || got[0].Host != "evil.example.net" || got[0].QType != "AAAA" {
		t.Errorf("decisions %+v, want one audit-deny for evil.example.net AAAA", got)
	}
	if n := testutil.ToFloat64(s.metrics.queries.WithLabelValues(string(vocab.VerdictAuditDeny), string(vocab.ReasonNotInRegistry))); n != 2 {
		t.Errorf("egressd_dns_queries_total{verdict=audit-deny,reason=not_in_registry} = %v, want 2", n)
	}
}

// TestNotReady: before the first allowlist nothing is answered but the
// pass-through zones (fail closed).
func TestNotReady(t *testing.T) {
	up := startFake(t, zoneHandler)
	d := &decisions{}
	s, err := New(Config{GatewayIPs: []netip.Addr{gw4}, Upstreams: []string{up.addr}, OnDecision: d.add})
	if err != nil {
		t.Fatal(err)
	}
	runHandlerCases(t, s, d, map[string]handlerCase{
		"allowed later": {name: "www.example.test.", qtype: dns.TypeA, opts: []queryOpt{withEDNS(1232, false)},
			rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeNotReady, reasons: []vocab.Reason{vocab.ReasonNotReady}},
		"pass-through": {name: "kube-dns.svc.cluster.local.", qtype: dns.TypeA, want: []string{"A 10.96.0.10"}},
	})
	s.SetAllowlist(loadAllowlist(t, "testdata/allowlist.yaml"))
	if m := ask(t, s, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Errorf("after SetAllowlist: %s", dns.RcodeToString[m.Rcode])
	}
	s.SetAllowlist(nil)
	if m := ask(t, s, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("after SetAllowlist(nil): %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// TestAllowlistSwap: a new allowlist applies to the next query.
func TestAllowlistSwap(t *testing.T) {
	s, _ := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}})
	if m := ask(t, s, "new.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[m.Rcode])
	}
	s.SetAllowlist(compileYAML(t, "new.yaml", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: new, namespace: web}
spec:
  hosts: [new.example.test]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
`))
	if m := ask(t, s, "new.example.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("after: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
	if m := ask(t, s, "www.example.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("removed host still answered: %s", dns.RcodeToString[m.Rcode])
	}
}

// TestMalformed: queries that are not one IN question get a plain error
// reply, are counted, and record no decision.
func TestMalformed(t *testing.T) {
	s, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}})
	q := func(f func(m *dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		f(m)
		return m
	}
	cases := map[string]struct {
		msg   *dns.Msg
		rcode int
	}{
		"a response":       {q(func(m *dns.Msg) { m.Response = true }), dns.RcodeFormatError},
		"no question":      {q(func(m *dns.Msg) { m.Question = nil }), dns.RcodeFormatError},
		"two questions":    {q(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dns.RcodeFormatError},
		"NOTIFY":           {q(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		"UPDATE":           {q(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		"class CHAOS":      {q(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dns.RcodeRefused},
		"AXFR":             {q(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }), dns.RcodeRefused},
		"IXFR":             {q(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeIXFR }), dns.RcodeRefused},
		"qtype OPT":        {q(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeOPT }), dns.RcodeFormatError},
		"EDNS version 1":   {q(func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), dns.RcodeBadVers},
		"root name, allow": {q(func(m *dns.Msg) { m.Question[0].Name = "." }), dns.RcodeNameError},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d.reset()
			m := askMsg(t, s, tc.msg, "udp")
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.rcode == dns.RcodeBadVers && m.IsEdns0() == nil {
				t.Error("BADVERS without OPT")
			}
		})
	}
	t.Run("nil message", func(t *testing.T) {
		w := newRecorder("udp")
		s.ServeDNS(w, nil)
		if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeFormatError {
			t.Fatalf("replies %v, want one FORMERR", w.msgs)
		}
	})
}

// TestRefusalLogLine: without an OnDecision hook every refusal is one zap
// line with the decision's fields; with one, the hook gets it instead.
func TestRefusalLogLine(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := New(Config{GatewayIPs: []netip.Addr{gw4}, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	s.SetAllowlist(loadAllowlist(t, "testdata/allowlist.yaml"))
	logs.TakeAll() // the allowlist update
	ask(t, s, "Evil.Example.NET.", dns.TypeAAAA)
	ask(t, s, "www.example.test.", dns.TypeA) // allowed: no info line
	entries := logs.TakeAll()
	if len(entries) != 1 {
		t.Fatalf("log lines %v, want 1", entries)
	}
	got := entries[0].ContextMap()
	want := map[string]any{
		"layer": "dns", "verdict": "deny", "reason": "not_in_registry", "host": "evil.example.net",
		"qtype": "AAAA", "source": "127.0.0.2:40000",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log fields (-want +got):\n%s", diff)
	}

	hooked, d := newTestServer(t, Config{GatewayIPs: []netip.Addr{gw4}, Log: zap.New(core)})
	logs.TakeAll()
	ask(t, hooked, "evil.example.net.", dns.TypeA)
	if entries := logs.FilterMessage("dns decision").TakeAll(); len(entries) != 0 {
		t.Errorf("with OnDecision the proxy still logged %v", entries)
	}
	if got := d.all(); len(got) != 1 || got[0].Reason != vocab.ReasonNotInRegistry {
		t.Errorf("OnDecision got %+v, want one not_in_registry refusal", got)
	}
}

// TestPassthroughZones: configured zones, the root zone, and none.
func TestPassthroughZones(t *testing.T) {
	cases := map[string]struct {
		zones []string
		name  string
		want  bool
	}{
		"default zone":          {nil, "a.svc.cluster.local.", true},
		"zone apex":             {nil, "cluster.local.", true},
		"not a label boundary":  {nil, "xcluster.local.", false},
		"escaped boundary":      {nil, `a\.cluster.local.`, false},
		"escaped inside":        {nil, `a\.b.cluster.local.`, true},
		"none":                  {[]string{}, "a.svc.cluster.local.", false},
		"configured, any case":  {[]string{"Corp.Example."}, "db.corp.example.", true},
		"configured, no dot":    {[]string{"corp.example"}, "db.corp.example.", true},
		"other zone not passed": {[]string{"corp.example"}, "a.svc.cluster.local.", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := New(Config{GatewayIPs: []netip.Addr{gw4}, PassthroughZones: tc.zones})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.passthrough(dns.CanonicalName(tc.name)); got != tc.want {
				t.Errorf("passthrough(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

// TestGuardEmbeddedForms: AAAA answers that carry a blocked IPv4 address
// in a 6to4 or Teredo address are dropped like the IPv4 address itself
// (the one classification of netguard); a 6to4 form of a public address
// is kept.
func TestGuardEmbeddedForms(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr}})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"6to4 of private, loopback and metadata dropped": {name: "sixtofour.example.test.", qtype: dns.TypeAAAA,
			want: []string{"AAAA 2002:808:808::1"}, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
		"teredo of a private client dropped": {name: "teredo.example.test.", qtype: dns.TypeAAAA,
			rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
	})
	d.reset()
	ask(t, s, "sixtofour.example.test.", dns.TypeAAAA)
	got := d.all()
	want := "dropped 2002:a00:1::1 (6to4 of 10.0.0.1 (private)), 2002:7f00:1::1 (6to4 of 127.0.0.1 (loopback)), 2002:a9fe:a9fe::1 (6to4 of 169.254.169.254 (link_local))"
	if len(got) != 1 || got[0].Detail != want {
		t.Errorf("decisions %+v, want one with detail %q", got, want)
	}
}

// TestForwardModeAllowedRanges: ranges the operator allows pass the guard.
func TestForwardModeAllowedRanges(t *testing.T) {
	up := startFake(t, zoneHandler)
	s, d := newTestServer(t, Config{Mode: ModeForward, Upstreams: []string{up.addr},
		Guard: &netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}})
	runHandlerCases(t, s, d, map[string]handlerCase{
		"allowed range":             {name: "private.example.test.", qtype: dns.TypeA, want: []string{"A 10.0.0.5"}},
		"loopback is still blocked": {name: "rebind.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, reasons: []vocab.Reason{vocab.ReasonBlockedAddress}},
	})
}

// TestCNAMEChain: the chain is followed from the query name, in any case,
// and stops at loops.
func TestCNAMEChain(t *testing.T) {
	m := new(dns.Msg)
	m.Answer = []dns.RR{
		mustRR("B.example. 60 IN CNAME c.example."),
		mustRR("a.example. 60 IN CNAME b.example."),
		mustRR("c.example. 60 IN CNAME a.example."),
		mustRR("x.example. 60 IN A 192.0.2.1"),
	}
	got := strings.Join(cnameChain(m, "a.example."), " ")
	if want := "a.example. b.example. c.example."; got != want {
		t.Errorf("chain %q, want %q", got, want)
	}
}

// TestCallerScope: a caller whose namespace is known is answered only the
// names its namespace may reach (exportTo, its Sidecar); an unknown
// caller is not scoped.
func TestCallerScope(t *testing.T) {
	namespaces := map[netip.Addr]string{netip.MustParseAddr("127.0.0.2"): "web"}
	s, d := newTestServer(t, Config{Mode: ModeGateway, GatewayIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		CallerNamespace: func(ip netip.Addr) (string, bool) { ns, ok := namespaces[ip]; return ns, ok }})
	s.SetAllowlist(compileYAML(t, "scope.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: stripe, namespace: payments}
spec:
  hosts: [api.stripe.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: payments}
spec:
  hosts: [ledger.example.com]
  exportTo: ["."]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pypi, namespace: web}
spec:
  hosts: [pypi.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: web}
spec:
  egress: [{hosts: ["./*", "payments/ledger.example.com"]}]
`))
	runHandlerCases(t, s, d, map[string]handlerCase{
		"own namespace's host": {name: "pypi.org.", qtype: dns.TypeA, want: []string{"A 192.0.2.1"}},
		"not in the Sidecar": {name: "api.stripe.com.", qtype: dns.TypeA, opts: []queryOpt{withEDNS(1232, false)},
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonSidecarScope}},
		"not exported": {name: "ledger.example.com.", qtype: dns.TypeA, opts: []queryOpt{withEDNS(1232, false)},
			rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeBlocked, reasons: []vocab.Reason{vocab.ReasonNotExported}},
	})
	for _, x := range d.all() {
		if x.Reason == vocab.ReasonSidecarScope && !strings.Contains(x.Detail, "Sidecar web/default") {
			t.Errorf("detail %q does not name the Sidecar", x.Detail)
		}
	}
	// A namespace whose Sidecar is dry-run: answered, and recorded as
	// audit-deny; exportTo is enforced all the same.
	s.cfg.AuditNamespaces = []string{"web"}
	d.reset()
	if m := ask(t, s, "api.stripe.com.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		t.Errorf("audited namespace refused: %v", m)
	}
	if got := d.all(); len(got) != 1 || got[0].Verdict != vocab.VerdictAuditDeny || got[0].Reason != vocab.ReasonSidecarScope {
		t.Errorf("audited namespace's decisions: %+v", got)
	}
	if m := ask(t, s, "ledger.example.com.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("exportTo not enforced for an audited namespace: %v", m)
	}
	s.cfg.AuditNamespaces = nil
	// An unknown caller is answered as before.
	delete(namespaces, netip.MustParseAddr("127.0.0.2"))
	if m := ask(t, s, "api.stripe.com.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		t.Errorf("unknown caller refused: %v", m)
	}
}
