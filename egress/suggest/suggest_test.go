package suggest

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// deny is a denial at t0 from 10.0.0.1 (not_in_registry unless changed).
func deny(layer vocab.Layer, host string, port uint32, edit ...func(*decision.Decision)) *decision.Decision {
	d := &decision.Decision{
		Time: t0, Layer: layer, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry,
		Source: netip.MustParseAddrPort("10.0.0.1:40000"), Host: host, Port: port,
	}
	for _, e := range edit {
		e(d)
	}
	return d
}

func reason(r vocab.Reason) func(*decision.Decision) {
	return func(d *decision.Decision) { d.Reason = r }
}

// summary is the part of a Suggestion most tests look at.
type summary struct {
	Host  string
	Ports string // "443/TLS,80/HTTP"
	Notes []string
}

func summarize(ss []Suggestion) []summary {
	out := []summary{}
	for _, s := range ss {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Number, p.Protocol))
		}
		out = append(out, summary{Host: s.Host, Ports: strings.Join(ports, ","), Notes: s.Notes})
	}
	return out
}

func TestInference(t *testing.T) {
	tests := map[string]struct {
		in   *decision.Decision
		want []summary
	}{
		"http":                {deny("http", "API.example.com.", 8080), []summary{{Host: "api.example.com", Ports: "8080/HTTP"}}},
		"http default port":   {deny("http", "a.example.com", 0), []summary{{Host: "a.example.com", Ports: "80/HTTP"}}},
		"http host with port": {deny("http", "a.example.com:8080", 8080), []summary{{Host: "a.example.com", Ports: "8080/HTTP"}}},
		"tls":                 {deny("tls", "a.example.com", 8443), []summary{{Host: "a.example.com", Ports: "8443/TLS"}}},
		"tcp":                 {deny("tcp", "db.example.com", 5432), []summary{{Host: "db.example.com", Ports: "5432/TCP"}}},
		"dns":                 {deny("dns", "a.example.com.", 0), []summary{{Host: "a.example.com", Ports: "443/TLS", Notes: []string{assumedNote}}}},
		"audit-deny": {deny("tls", "a.example.com", 443, func(d *decision.Decision) { d.Verdict = vocab.VerdictAuditDeny }),
			[]summary{{Host: "a.example.com", Ports: "443/TLS"}}},
		"idn": {deny("tls", "bücher.example", 443), []summary{{Host: "xn--bcher-kva.example", Ports: "443/TLS"}}},
		"redirect https": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) { d.Location = "https://Login.Example.net/x" }),
			[]summary{{Host: "login.example.net", Ports: "443/TLS"}}},
		"redirect http explicit port": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) { d.Location = "http://login.example.net:8080/x" }),
			[]summary{{Host: "login.example.net", Ports: "8080/HTTP"}}},
		"redirect https explicit port": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) { d.Location = "https://login.example.net:8443" }),
			[]summary{{Host: "login.example.net", Ports: "8443/TLS"}}},
		"redirect chain last hop": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) {
				d.Location = "/relative"
				d.Chain = &decision.Chain{ID: "c", Hop: 1, Hops: []decision.Hop{
					{URL: "http://www.example.org/", Host: "www.example.org"},
					{URL: "https://sso.example.net/start", Host: "sso.example.net"},
				}}
			}),
			[]summary{{Host: "sso.example.net", Ports: "443/TLS"}}},
		"redirect hop host only": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) {
				d.Chain = &decision.Chain{ID: "c", Hops: []decision.Hop{{Host: "sso.example.net"}}}
			}),
			[]summary{{Host: "sso.example.net", Ports: "443/TLS", Notes: []string{assumedNote}}}},
		"redirect without target": {deny("http", "b.example.org", 80, reason(vocab.ReasonRedirectUnlisted)),
			[]summary{{Host: "b.example.org", Ports: "80/HTTP"}}},
		"redirect to ip": {deny("http", "www.example.org", 80, reason(vocab.ReasonRedirectUnlisted),
			func(d *decision.Decision) { d.Location = "http://192.0.2.1/x" }), []summary{}},
		"cname": {deny("dns", "www.example.com", 0, reason(vocab.ReasonCNAMEToUnlisted),
			func(d *decision.Decision) { d.Detail = "www.example.com -> www.example.com.cdn.net -> edge.cdn.net" }),
			[]summary{{Host: "edge.cdn.net", Ports: "443/TLS", Notes: []string{assumedNote}}}},
		"cname without chain": {deny("dns", "www.example.com", 0, reason(vocab.ReasonCNAMEToUnlisted)),
			[]summary{{Host: "www.example.com", Ports: "443/TLS", Notes: []string{assumedNote}}}},
		"empty host":     {deny("http", "", 80), []summary{}},
		"ipv4 host":      {deny("http", "192.0.2.1", 80), []summary{}},
		"ipv6 host":      {deny("tls", "[2001:db8::1]", 443), []summary{}},
		"ipv6 with port": {deny("http", "[2001:db8::1]:8080", 8080), []summary{}},
		"invalid host":   {deny("dns", "_sip._tcp.example.com", 0), []summary{}},
		"unknown layer":  {deny("udp", "a.example.com", 53), []summary{{Host: "a.example.com", Ports: "443/TLS", Notes: []string{assumedNote}}}},
		"tcp without port": {deny("tcp", "a.example.com", 0),
			[]summary{{Host: "a.example.com", Ports: "443/TLS", Notes: []string{assumedNote}}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := summarize(Suggest([]*decision.Decision{tc.in}, Options{}))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestIgnoredReasons(t *testing.T) {
	for _, r := range []vocab.Reason{
		vocab.ReasonAllowed, vocab.ReasonAllowAny, vocab.ReasonPassthrough, vocab.ReasonNoSNI,
		vocab.ReasonUnidentifiedTCP, vocab.ReasonPolicyDenied, vocab.ReasonTLSOriginationFailed,
		vocab.ReasonUpstreamError, vocab.ReasonBlockedAddress, vocab.ReasonNotReady, vocab.ReasonMalformed,
	} {
		if got := Suggest([]*decision.Decision{deny("tls", "a.example.com", 443, reason(r))}, Options{}); len(got) != 0 {
			t.Errorf("reason %s: got %v, want nothing", r, summarize(got))
		}
	}
	for _, r := range []vocab.Reason{vocab.ReasonNotInRegistry, vocab.ReasonRedirectUnlisted, vocab.ReasonCNAMEToUnlisted} {
		allowed := deny("tls", "a.example.com", 443, reason(r), func(d *decision.Decision) { d.Verdict = vocab.VerdictAllow })
		if got := Suggest([]*decision.Decision{allowed}, Options{}); len(got) != 0 {
			t.Errorf("verdict allow, reason %s: got %v, want nothing", r, summarize(got))
		}
	}
	if got := Suggest([]*decision.Decision{nil}, Options{}); len(got) != 0 {
		t.Errorf("nil decision: got %v", got)
	}
}

func TestMerge(t *testing.T) {
	tests := map[string]struct {
		in   []*decision.Decision
		want []summary
	}{
		"sorted by number": {
			[]*decision.Decision{deny("tls", "a.example.com", 8443), deny("http", "a.example.com", 80), deny("tls", "a.example.com", 443)},
			[]summary{{Host: "a.example.com", Ports: "80/HTTP,443/TLS,8443/TLS"}},
		},
		"dns adds no assumed port beside a real one": {
			[]*decision.Decision{deny("dns", "a.example.com", 0), deny("http", "a.example.com", 80)},
			[]summary{{Host: "a.example.com", Ports: "80/HTTP"}},
		},
		"HTTP over TLS over TCP": {
			[]*decision.Decision{deny("tcp", "a.example.com", 8080), deny("tls", "a.example.com", 8080), deny("http", "a.example.com", 8080)},
			[]summary{{Host: "a.example.com", Ports: "8080/HTTP", Notes: []string{"port 8080 seen as HTTP and TLS and TCP; HTTP kept"}}},
		},
		"TLS over TCP": {
			[]*decision.Decision{deny("tcp", "a.example.com", 993), deny("tls", "a.example.com", 993)},
			[]summary{{Host: "a.example.com", Ports: "993/TLS", Notes: []string{"port 993 seen as TLS and TCP; TLS kept"}}},
		},
		"case and trailing dot": {
			[]*decision.Decision{deny("tls", "A.Example.COM.", 443), deny("tls", "a.example.com", 443)},
			[]summary{{Host: "a.example.com", Ports: "443/TLS"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := summarize(Suggest(tc.in, Options{}))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestCountsSourcesOrder(t *testing.T) {
	from := func(addr, identity string, at time.Time) func(*decision.Decision) {
		return func(d *decision.Decision) {
			d.Source = netip.MustParseAddrPort(addr)
			d.Identity = identity
			d.Time = at
		}
	}
	ds := []*decision.Decision{
		deny("tls", "b.example.org", 443, from("10.0.0.10:1", "", t0)),
		deny("tls", "b.example.org", 443, from("10.0.0.9:2", "", t0.Add(time.Minute))),
		deny("tls", "b.example.org", 443, from("10.0.0.9:3", "", t0)),
		deny("tls", "b.example.org", 443, from("10.0.0.1:3", "ns/sa", t0)),
		deny("tls", "a.example.org", 443, from("10.0.0.1:1", "", t0)),
		deny("tls", "c.example.org", 443, from("10.0.0.1:1", "", t0)),
	}
	got := Suggest(ds, Options{WildcardMin: -1})
	if len(got) != 3 {
		t.Fatalf("got %d suggestions, want 3", len(got))
	}
	b := got[0]
	if b.Host != "b.example.org" || b.Denials != 4 || !b.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("first: got %s with %d denials, last seen %v", b.Host, b.Denials, b.LastSeen)
	}
	if d := cmp.Diff([]string{"10.0.0.9", "10.0.0.10", "ns/sa"}, b.Sources); d != "" {
		t.Errorf("sources (-want +got):\n%s", d)
	}
	if got[1].Host != "a.example.org" || got[2].Host != "c.example.org" {
		t.Errorf("order: got %s, %s; want a, c (equal denials by host)", got[1].Host, got[2].Host)
	}

	var many []*decision.Decision
	for i := range 15 {
		many = append(many, deny("tls", "a.example.com", 443, from(fmt.Sprintf("10.0.1.%d:1", i), "", t0)))
	}
	s := Suggest(many, Options{})[0]
	if len(s.Sources) != MaxSources || s.Sources[0] != "10.0.1.0" || s.Sources[9] != "10.0.1.9" {
		t.Errorf("sources: got %v", s.Sources)
	}
	if d := cmp.Diff([]string{"5 more sources not listed"}, s.Notes); d != "" {
		t.Errorf("notes (-want +got):\n%s", d)
	}
}

func TestWildcards(t *testing.T) {
	hosts := func(layer vocab.Layer, port uint32, names ...string) []*decision.Decision {
		var ds []*decision.Decision
		for _, n := range names {
			ds = append(ds, deny(layer, n, port))
		}
		return ds
	}
	tests := map[string]struct {
		in   []*decision.Decision
		min  int
		want []string // "host covers..." per suggestion, in output order
	}{
		"below threshold": {hosts("tls", 443, "a.example.com", "b.example.com"), 0,
			[]string{"a.example.com", "b.example.com"}},
		"at threshold": {hosts("tls", 443, "a.example.com", "b.example.com", "c.d.example.com"), 0,
			[]string{"*.example.com a.example.com b.example.com c.d.example.com"}},
		"custom threshold": {hosts("tls", 443, "a.example.com", "b.example.com"), 2,
			[]string{"*.example.com a.example.com b.example.com"}},
		"disabled": {hosts("tls", 443, "a.example.com", "b.example.com", "c.example.com"), -1,
			[]string{"a.example.com", "b.example.com", "c.example.com"}},
		"same host twice counts once": {hosts("tls", 443, "a.example.com", "a.example.com", "b.example.com"), 0,
			[]string{"a.example.com", "b.example.com"}},
		"apex stays exact and does not count": {hosts("tls", 443, "example.com", "a.example.com", "b.example.com"), 0,
			[]string{"a.example.com", "b.example.com", "example.com"}},
		"apex beside a wildcard": {hosts("tls", 443, "example.com", "a.example.com", "b.example.com", "c.example.com"), 0,
			[]string{"*.example.com a.example.com b.example.com c.example.com", "example.com"}},
		"co.uk groups by registrable domain": {hosts("tls", 443, "a.example.co.uk", "b.example.co.uk", "c.example.co.uk", "x.other.co.uk"), 0,
			[]string{"*.example.co.uk a.example.co.uk b.example.co.uk c.example.co.uk", "x.other.co.uk"}},
		"github.io users are separate domains": {hosts("tls", 443, "alice.github.io", "bob.github.io", "carol.github.io"), 0,
			[]string{"alice.github.io", "bob.github.io", "carol.github.io"}},
		"one github.io site": {hosts("tls", 443, "a.alice.github.io", "b.alice.github.io", "c.alice.github.io"), 0,
			[]string{"*.alice.github.io a.alice.github.io b.alice.github.io c.alice.github.io"}},
		"public suffixes themselves": {hosts("tls", 443, "co.uk", "github.io", "com"), 1,
			[]string{"co.uk", "com", "github.io"}},
		"unlisted top-level domain": {hosts("dns", 0, "a.svc.cluster.local", "b.svc.cluster.local", "c.svc.cluster.local"), 0,
			[]string{"a.svc.cluster.local", "b.svc.cluster.local", "c.svc.cluster.local"}},
		"plain TCP stays exact": {append(hosts("tls", 443, "a.example.com", "b.example.com"), hosts("tcp", 5432, "c.example.com")...), 0,
			[]string{"a.example.com", "b.example.com", "c.example.com"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, s := range Suggest(tc.in, Options{WildcardMin: tc.min}) {
				got = append(got, strings.Join(append([]string{s.Host}, s.Covers...), " "))
				if strings.HasPrefix(s.Host, "*.") != (s.Resolution == "NONE") {
					t.Errorf("%s: resolution %s", s.Host, s.Resolution)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestWildcardMergesPortsAndCounts(t *testing.T) {
	ds := []*decision.Decision{
		deny("tls", "a.example.com", 443), deny("tls", "a.example.com", 443),
		deny("http", "b.example.com", 80),
		deny("dns", "c.example.com", 0),
	}
	got := Suggest(ds, Options{})
	if len(got) != 1 {
		t.Fatalf("got %v", summarize(got))
	}
	s := got[0]
	want := summary{Host: "*.example.com", Ports: "80/HTTP,443/TLS"}
	if d := cmp.Diff([]summary{want}, summarize(got)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if s.Denials != 4 || s.Name != "egressd-wildcard-example-com" {
		t.Errorf("got %d denials, name %q", s.Denials, s.Name)
	}
}

func TestAllowlist(t *testing.T) {
	allow := mustAllowlist(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.cdn.example.net"]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: NONE
`)
	tests := map[string]struct {
		in   []*decision.Decision
		want []summary
	}{
		"allowed pair skipped": {[]*decision.Decision{deny("tls", "api.example.com", 443)}, []summary{}},
		"allowed by wildcard":  {[]*decision.Decision{deny("tls", "x.cdn.example.net", 443)}, []summary{}},
		"dns of a listed host": {[]*decision.Decision{deny("dns", "api.example.com", 0), deny("dns", "y.cdn.example.net", 0)}, []summary{}},
		"other port suggested": {[]*decision.Decision{deny("http", "api.example.com", 80), deny("tls", "api.example.com", 443)},
			[]summary{{Host: "api.example.com", Ports: "80/HTTP"}}},
		"wildcard ports kept on exact host": {[]*decision.Decision{deny("tls", "x.cdn.example.net", 8443)},
			[]summary{{Host: "x.cdn.example.net", Ports: "80/HTTP,443/TLS,8443/TLS", Notes: []string{
				"port 80, 443 already allowed by *.cdn.example.net is listed too: egressd matches an exact host before a wildcard"}}}},
		"listed host not folded into a wildcard": {[]*decision.Decision{
			deny("http", "api.example.com", 80), deny("tls", "b.example.com", 443), deny("tls", "c.example.com", 443)},
			[]summary{{Host: "api.example.com", Ports: "80/HTTP"}, {Host: "b.example.com", Ports: "443/TLS"}, {Host: "c.example.com", Ports: "443/TLS"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := summarize(Suggest(tc.in, Options{Allowlist: allow}))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// Skipped denials are counted nowhere.
	got := Suggest([]*decision.Decision{deny("tls", "api.example.com", 443), deny("http", "api.example.com", 80)}, Options{Allowlist: allow})
	if len(got) != 1 || got[0].Denials != 1 {
		t.Errorf("got %+v, want one suggestion with 1 denial", got)
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example.com"
	tests := map[string]struct {
		hosts []string
		want  []string // names in host order
	}{
		"plain":      {[]string{"api.example.com"}, []string{"egressd-api-example-com"}},
		"wildcard":   {[]string{"*.example.com"}, []string{"egressd-wildcard-example-com"}},
		"exactly 63": {[]string{strings.Repeat("b", 55)}, []string{"egressd-" + strings.Repeat("b", 55)}},
		"long":       {[]string{long}, []string{"egressd-" + strings.Repeat("a", 46) + "-" + hashOf(long)}},
		"equal names told apart": {[]string{"a-b.example.com", "a.b-example.com", "c.example.com"},
			[]string{"egressd-a-b-example-com-" + hashOf("a-b.example.com"), "egressd-a-b-example-com-" + hashOf("a.b-example.com"), "egressd-c-example-com"}},
		"trailing dash trimmed before the hash": {[]string{strings.Repeat("c", 45) + ".example.com"},
			[]string{"egressd-" + strings.Repeat("c", 45) + "-" + hashOf(strings.Repeat("c", 45)+".example.com")}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var ss []Suggestion
			for _, h := range tc.hosts {
				ss = append(ss, Suggestion{Host: h})
			}
			assignNames(ss)
			var got []string
			for _, s := range ss {
				got = append(got, s.Name)
				if !serviceentry.IsDNS1123Label(s.Name) {
					t.Errorf("%q is not a DNS-1123 label", s.Name)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func hashOf(host string) string {
	n := hashedName(host, "")
	return n[len(n)-8:]
}

func TestClashNotes(t *testing.T) {
	var ds []*decision.Decision
	for i := range 6 {
		ds = append(ds, deny("tcp", fmt.Sprintf("db%d.example.net", i), 5432))
	}
	ds = append(ds, deny("http", "web.example.org", 5432), deny("tls", "tls.example.org", 5432))
	got := Suggest(ds, Options{})
	notes := map[string][]string{}
	for _, s := range got {
		notes[s.Host] = s.Notes
	}
	const tail = " on the same port: egressd tells plain TCP apart only by address; add spec.addresses to the TCP entries before applying"
	want := map[string][]string{
		"db0.example.net": {"TCP port 5432 clashes with db1.example.net, db2.example.net, db3.example.net and 3 more" + tail},
		"db1.example.net": {"TCP port 5432 clashes with db0.example.net, db2.example.net, db3.example.net and 3 more" + tail},
		"db2.example.net": {"TCP port 5432 clashes with db0.example.net, db1.example.net, db3.example.net and 3 more" + tail},
		"db3.example.net": {"TCP port 5432 clashes with db0.example.net, db1.example.net, db2.example.net and 3 more" + tail},
		"db4.example.net": {"TCP port 5432 clashes with db0.example.net, db1.example.net, db2.example.net and 3 more" + tail},
		"db5.example.net": {"TCP port 5432 clashes with db0.example.net, db1.example.net, db2.example.net and 3 more" + tail},
		"web.example.org": {"HTTP port 5432 clashes with db0.example.net, db1.example.net, db2.example.net and 3 more" + tail},
		"tls.example.org": nil, // TLS is told apart by SNI
	}
	if d := cmp.Diff(want, notes); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
