package serviceentry

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testSE is one ServiceEntry of a compile test: its namespace, name and
// spec (YAML lines as they sit under "spec:", indented by two spaces).
type testSE struct{ ns, name, spec string }

// parseSEs parses each resource as its own file "<name>.yaml", so that its
// problems start with "<name>.yaml:1: ServiceEntry <ns>/<name>: ". Warnings
// are returned for Compile; an error fails the test, as compile tests start
// from valid entries.
func parseSEs(t *testing.T, ses ...testSE) ([]*Entry, []Problem) {
	t.Helper()
	var entries []*Entry
	var problems []Problem
	for _, se := range ses {
		doc := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", se.name, se.ns, se.spec)
		es, ps := Parse(se.name+".yaml", []byte(doc))
		if hasError(ps) || len(es) != 1 {
			t.Fatalf("parsing %s/%s: %d entries, problems:\n%s", se.ns, se.name, len(es), problemLines(ps))
		}
		entries = append(entries, es...)
		problems = append(problems, ps...)
	}
	return entries, problems
}

// compileSEs parses and compiles the resources, in the order given.
func compileSEs(t *testing.T, ses ...testSE) *Allowlist {
	t.Helper()
	return Compile(parseSEs(t, ses...))
}

// hostPorts lists every allowed host port as "host number/protocol ns/name",
// in the allowlist's order.
func hostPorts(a *Allowlist) []string {
	var out []string
	for _, h := range a.Hosts() {
		for _, p := range h.Ports {
			out = append(out, fmt.Sprintf("%s %d/%s %s", h.Name, p.Number, p.Protocol, p.Entry.Ref))
		}
	}
	return out
}

// problemList formats each problem as "severity: " + Problem.Error().
func problemList(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, string(p.Severity)+": "+p.Error())
	}
	return out
}

// Specs shared by the tests below.
const (
	tlsAPI     = "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
	tlsAnyHost = "  hosts: ['*.example.com']\n  resolution: NONE\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
	tlsBHost   = "  hosts: ['*.b.example.com']\n  resolution: NONE\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
)

// matchAllowlist allows api.example.com (443 TLS, 80 HTTP), *.example.com
// and *.b.example.com (443 TLS).
func matchAllowlist(t *testing.T) *Allowlist {
	t.Helper()
	a := compileSEs(t,
		testSE{"ns", "exact", "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]\n"},
		testSE{"ns", "wild", tlsAnyHost},
		testSE{"ns", "deeper", tlsBHost},
	)
	if len(a.Problems()) != 0 {
		t.Fatalf("unexpected problems:\n%s", problemLines(a.Problems()))
	}
	return a
}

func TestAllowlistMatch(t *testing.T) {
	a := matchAllowlist(t)
	tests := map[string]struct {
		name string
		want string // the matching host's name, "" for none
	}{
		"exact beats a covering wildcard":         {"api.example.com", "api.example.com"},
		"wildcard":                                {"www.example.com", "*.example.com"},
		"most specific wildcard wins":             {"a.b.example.com", "*.b.example.com"},
		"wildcard covers several labels":          {"x.y.example.com", "*.example.com"},
		"deeper wildcard covers several labels":   {"x.y.b.example.com", "*.b.example.com"},
		"a narrower wildcard's suffix":            {"b.example.com", "*.example.com"},
		"wildcard does not match its bare suffix": {"example.com", ""},
		"upper case":                              {"API.Example.COM", "api.example.com"},
		"trailing dot":                            {"api.example.com.", "api.example.com"},
		"case and trailing dot under wildcard":    {"WWW.Example.Com.", "*.example.com"},
		"similar name is not a subdomain":         {"notexample.com", ""},
		"suffix of an exact host":                 {"example.com.", ""},
		"subdomain of an exact host only":         {"v1.api.example.org", ""},
		"other domain":                            {"example.net", ""},
		"single label":                            {"localhost", ""},
		"empty":                                   {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := ""
			if h := a.Match(tt.name); h != nil {
				got = h.Name
				if h.Wildcard != IsWildcard(h.Name) {
					t.Errorf("Match(%q).Wildcard = %v for %q", tt.name, h.Wildcard, h.Name)
				}
			}
			if got != tt.want {
				t.Errorf("Match(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestAllowlistMatchNil(t *testing.T) {
	var a *Allowlist
	if h := a.Match("api.example.com"); h != nil {
		t.Errorf("nil Allowlist: Match = %q, want nil", h.Name)
	}
	if h, p, ok := a.MatchPort("api.example.com", 443); h != nil || ok || p != (HostPort{}) {
		t.Errorf("nil Allowlist: MatchPort = %v, %v, %v; want nil, zero, false", h, p, ok)
	}
}

func TestAllowlistMatchPort(t *testing.T) {
	a := matchAllowlist(t)
	type result struct {
		Host string // "" for no host
		Port string // "number/protocol ns/name", "" for the zero HostPort
		OK   bool
	}
	tests := map[string]struct {
		name string
		port uint32
		want result
	}{
		"exact host, HTTP port":         {"api.example.com", 80, result{"api.example.com", "80/HTTP ns/exact", true}},
		"exact host, TLS port":          {"API.example.com.", 443, result{"api.example.com", "443/TLS ns/exact", true}},
		"exact host, port not listed":   {"api.example.com", 8080, result{"api.example.com", "", false}},
		"wildcard host":                 {"www.example.com", 443, result{"*.example.com", "443/TLS ns/wild", true}},
		"exact host hides the wildcard": {"api.example.com", 8443, result{"api.example.com", "", false}},
		"wildcard host, port not listed": {
			"a.b.example.com", 80, result{"*.b.example.com", "", false},
		},
		"no host": {"example.net", 443, result{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h, p, ok := a.MatchPort(tt.name, tt.port)
			got := result{OK: ok}
			if h != nil {
				got.Host = h.Name
			}
			if p != (HostPort{}) {
				got.Port = fmt.Sprintf("%d/%s %s", p.Number, p.Protocol, p.Entry.Ref)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("MatchPort(%q, %d) (-want +got):\n%s", tt.name, tt.port, d)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	http := HostPort{Port: Port{Number: 80, Protocol: ProtocolHTTP, Name: "http"}}
	tls := HostPort{Port: Port{Number: 443, Protocol: ProtocolTLS, Name: "tls"}}
	h := &Host{Name: "api.example.com", Ports: []HostPort{http, tls}}
	tests := map[string]struct {
		host   *Host
		number uint32
		want   HostPort
		wantOK bool
	}{
		"first port":  {h, 80, http, true},
		"second port": {h, 443, tls, true},
		"not listed":  {h, 8080, HostPort{}, false},
		"zero":        {h, 0, HostPort{}, false},
		"no ports":    {&Host{Name: "api.example.com"}, 80, HostPort{}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := tt.host.Port(tt.number)
			if ok != tt.wantOK {
				t.Errorf("Port(%d) ok = %v, want %v", tt.number, ok, tt.wantOK)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Port(%d) (-want +got):\n%s", tt.number, d)
			}
		})
	}
}

func TestCompileConflicts(t *testing.T) {
	const (
		tcpDB1 = "  hosts: [db1.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"
		tcpRaw = "  hosts: [raw.example.com]\n  resolution: DNS\n  ports: [{number: 8080, name: raw, protocol: TCP}]\n"
		httpWb = "  hosts: [web.example.com]\n  resolution: DNS\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
	)
	// tcpAt is a TCP entry for host on port 5432 with the given addresses.
	tcpAt := func(host, addresses string) string {
		return "  hosts: [" + host + "]\n  addresses: [" + addresses + "]\n  resolution: NONE\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"
	}
	tests := map[string]struct {
		in           []testSE // in this order
		wantHosts    []string // hostPorts
		wantProblems []string // problemList
	}{
		"no conflict": {
			in: []testSE{
				{"ns", "a", tlsAPI},
				{"ns", "b", tlsAnyHost},
				{"ns", "c", "  hosts: [www.example.com]\n  resolution: DNS\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n"},
				{"ns", "d", httpWb},
			},
			wantHosts: []string{
				"*.example.com 443/TLS ns/b",
				"api.example.com 443/TLS ns/a",
				"web.example.com 8080/HTTP ns/d",
				"www.example.com 8080/HTTP ns/c",
			},
		},
		"same host and port: first by name wins, the loser's other hosts and ports apply": {
			in: []testSE{
				{"ns", "b", "  hosts: [api.example.com, www.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]\n"},
				{"ns", "a", tlsAPI},
			},
			wantHosts: []string{
				"api.example.com 80/HTTP ns/b",
				"api.example.com 443/TLS ns/a",
				"www.example.com 80/HTTP ns/b",
				"www.example.com 443/TLS ns/b",
			},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.hosts[0]: host "api.example.com" port 443 is already allowed by ServiceEntry ns/a; this port is ignored for this host`,
			},
		},
		"same host and port: namespace orders before name": {
			in: []testSE{
				{"zz", "a", tlsAPI},
				{"aa", "z", tlsAPI},
			},
			wantHosts: []string{"api.example.com 443/TLS aa/z"},
			wantProblems: []string{
				`error: a.yaml:1: ServiceEntry zz/a: spec.hosts[0]: host "api.example.com" port 443 is already allowed by ServiceEntry aa/z; this port is ignored for this host`,
			},
		},
		"same wildcard and port": {
			in: []testSE{
				{"ns", "b", "  hosts: [api.example.org, '*.example.com']\n  resolution: NONE\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"},
				{"ns", "a", tlsAnyHost},
			},
			wantHosts: []string{
				"*.example.com 443/TLS ns/a",
				"api.example.org 443/TLS ns/b",
			},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.hosts[1]: host "*.example.com" port 443 is already allowed by ServiceEntry ns/a; this port is ignored for this host`,
			},
		},
		"TCP without addresses twice on one port": {
			in: []testSE{
				{"ns", "b", "  hosts: [db2.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}]\n"},
				{"ns", "a", tcpDB1},
			},
			wantHosts: []string{
				"db1.example.com 5432/TCP ns/a",
				"db2.example.com 443/TLS ns/b",
			},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: port 5432: TCP without addresses is already claimed by ServiceEntry ns/a; the gateway can tell such connections apart only by address, so add spec.addresses`,
			},
		},
		"TCP-class protocol without addresses claims the whole port too": {
			in: []testSE{
				{"ns", "a", "  hosts: [mongo.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: mongo, protocol: MONGO}]\n"},
				{"ns", "b", "  hosts: [db2.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"},
			},
			wantHosts: []string{"mongo.example.com 5432/MONGO ns/a"},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: port 5432: TCP without addresses is already claimed by ServiceEntry ns/a; the gateway can tell such connections apart only by address, so add spec.addresses`,
			},
		},
		"TCP without addresses, then HTTP on its port": {
			in: []testSE{
				{"ns", "b", httpWb},
				{"ns", "a", tcpRaw},
			},
			wantHosts: []string{"raw.example.com 8080/TCP ns/a"},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: port 8080: HTTP conflicts with TCP ServiceEntry ns/a, which takes every plaintext connection on this port (it has no addresses); give it spec.addresses or use another port`,
			},
		},
		"HTTP, then TCP without addresses on its port": {
			in: []testSE{
				{"ns", "b", tcpRaw},
				{"ns", "a", httpWb},
			},
			wantHosts: []string{"web.example.com 8080/HTTP ns/a"},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: port 8080: TCP without addresses conflicts with HTTP ServiceEntry ns/a on the same port; add spec.addresses or use another port`,
			},
		},
		"TCP with an address already claimed on the port: the losing port claims none of its addresses": {
			in: []testSE{
				{"ns", "a", tcpAt("db1.example.com", "192.0.2.10")},
				{"ns", "b", tcpAt("db2.example.com", "192.0.2.11, 192.0.2.10")},
				{"ns", "c", tcpAt("db3.example.com", "192.0.2.11")},
			},
			wantHosts: []string{
				"db1.example.com 5432/TCP ns/a",
				"db3.example.com 5432/TCP ns/c",
			},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: address 192.0.2.10/32 port 5432 is already claimed by ServiceEntry ns/a`,
			},
		},
		"TCP with the same CIDR range on the port": {
			in: []testSE{
				{"ns", "a", tcpAt("db1.example.com", "198.18.0.0/24")},
				{"ns", "b", tcpAt("db2.example.com", "198.18.0.0/24")},
			},
			wantHosts: []string{"db1.example.com 5432/TCP ns/a"},
			wantProblems: []string{
				`error: b.yaml:1: ServiceEntry ns/b: spec.ports[0]: address 198.18.0.0/24 port 5432 is already claimed by ServiceEntry ns/a`,
			},
		},
		"TCP with different addresses share a port": {
			in: []testSE{
				{"ns", "a", tcpAt("db1.example.com", "192.0.2.10")},
				{"ns", "b", tcpAt("db2.example.com", "192.0.2.11, 2001:db8::1")},
				{"ns", "c", tcpAt("db3.example.com", "198.18.0.0/24")},
			},
			wantHosts: []string{
				"db1.example.com 5432/TCP ns/a",
				"db2.example.com 5432/TCP ns/b",
				"db3.example.com 5432/TCP ns/c",
			},
		},
		"the same address on different ports": {
			in: []testSE{
				{"ns", "a", tcpAt("db1.example.com", "192.0.2.10")},
				{"ns", "b", "  hosts: [db2.example.com]\n  addresses: [192.0.2.10]\n  resolution: NONE\n  ports: [{number: 3306, name: mysql, protocol: MYSQL}]\n"},
			},
			wantHosts: []string{
				"db1.example.com 5432/TCP ns/a",
				"db2.example.com 3306/MYSQL ns/b",
			},
		},
		"TCP with addresses beside TCP without on one port": {
			in: []testSE{
				{"ns", "a", tcpDB1},
				{"ns", "b", tcpAt("db2.example.com", "192.0.2.10")},
			},
			wantHosts: []string{
				"db1.example.com 5432/TCP ns/a",
				"db2.example.com 5432/TCP ns/b",
			},
		},
		"TCP with addresses beside HTTP on one port": {
			in: []testSE{
				{"ns", "a", httpWb},
				{"ns", "b", "  hosts: [raw.example.com]\n  addresses: [192.0.2.10]\n  resolution: NONE\n  ports: [{number: 8080, name: raw, protocol: TCP}]\n"},
			},
			wantHosts: []string{
				"raw.example.com 8080/TCP ns/b",
				"web.example.com 8080/HTTP ns/a",
			},
		},
		"TLS does not claim the port": {
			in: []testSE{
				{"ns", "a", "  hosts: [raw.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: raw, protocol: TCP}]\n"},
				{"ns", "b", tlsAPI},
			},
			wantHosts: []string{
				"api.example.com 443/TLS ns/b",
				"raw.example.com 443/TCP ns/a",
			},
		},
		"wildcard TCP with resolution NONE and no addresses": {
			in: []testSE{
				{"ns", "a", "  hosts: ['*.example.com']\n  resolution: NONE\n  ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}]\n"},
			},
			wantHosts: []string{"*.example.com 443/TLS ns/a"},
			wantProblems: []string{
				// From validation, passed through Compile.
				`warning: a.yaml:1: ServiceEntry ns/a: spec.ports[0]: TCP port 5432 on wildcard host "*.example.com" without spec.addresses: the gateway cannot tell such connections apart and will only route them by port; list the addresses, or use TLS or HTTP`,
				`error: a.yaml:1: ServiceEntry ns/a: spec.ports[0]: port 5432: TCP with resolution NONE, no addresses and the wildcard host "*.example.com" leaves the gateway no destination to connect to; add spec.addresses, endpoints, or an exact host`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := compileSEs(t, tt.in...)
			if d := cmp.Diff(tt.wantHosts, hostPorts(a)); d != "" {
				t.Errorf("hosts (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantProblems, problemList(a.Problems())); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestCompileEntriesSorted(t *testing.T) {
	a := compileSEs(t,
		testSE{"ns", "b", tlsAPI},
		testSE{"aa", "z", tlsBHost},
		testSE{"ns", "a", tlsAnyHost},
	)
	var got []string
	for _, e := range a.Entries() {
		got = append(got, e.Ref.String())
	}
	if d := cmp.Diff([]string{"aa/z", "ns/a", "ns/b"}, got); d != "" {
		t.Errorf("Entries (-want +got):\n%s", d)
	}
}

// TestCompileDeterministic compiles the same entries in every rotation and
// the reverse of the input order: the version, hosts and problems must not
// change.
func TestCompileDeterministic(t *testing.T) {
	entries, warnings := parseSEs(t,
		testSE{"ns", "a", tlsAPI},
		testSE{"ns", "b", "  hosts: [api.example.com, www.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]\n"},
		testSE{"ns", "c", tlsAnyHost},
		testSE{"other", "c", tlsAnyHost},
		testSE{"ns", "d", "  hosts: [raw.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: raw, protocol: TCP}]\n"},
		testSE{"ns", "e", "  hosts: [db.example.com]\n  addresses: [192.0.2.10]\n  resolution: NONE\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"},
		testSE{"ns", "f", "  hosts: [db2.example.com]\n  addresses: [192.0.2.10]\n  resolution: NONE\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n"},
	)
	want := Compile(entries, warnings)
	if len(want.Problems()) < 3 {
		t.Fatalf("want several conflicts to order, got:\n%s", problemLines(want.Problems()))
	}
	reversed := slices.Clone(entries)
	slices.Reverse(reversed)
	orders := map[string][]*Entry{"reversed": reversed}
	for i := 1; i < len(entries); i++ {
		orders[fmt.Sprintf("rotated by %d", i)] = append(slices.Clone(entries[i:]), entries[:i]...)
	}
	for name, in := range orders {
		t.Run(name, func(t *testing.T) {
			got := Compile(in, warnings)
			if got.Version() != want.Version() {
				t.Errorf("Version = %s, want %s", got.Version(), want.Version())
			}
			if d := cmp.Diff(hostPorts(want), hostPorts(got)); d != "" {
				t.Errorf("hosts (-want +got):\n%s", d)
			}
			if d := cmp.Diff(problemList(want.Problems()), problemList(got.Problems())); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestCompileVersion(t *testing.T) {
	const static = "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints: [{address: %s}]\n"
	tests := map[string]struct {
		a, b []testSE
		same bool
	}{
		"identical": {
			a:    []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.1")}},
			b:    []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.1")}},
			same: true,
		},
		"endpoint address": {
			a: []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.1")}},
			b: []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.2")}},
		},
		"endpoint port": {
			a: []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.1")}},
			b: []testSE{{"ns", "a", fmt.Sprintf(static, "192.0.2.1, ports: {tls: 8443}")}},
		},
		"protocol": {
			a: []testSE{{"ns", "a", tlsAPI}},
			b: []testSE{{"ns", "a", "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: HTTPS}]\n"}},
		},
		"another host": {
			a: []testSE{{"ns", "a", tlsAPI}},
			b: []testSE{{"ns", "a", tlsAPI}, {"ns", "b", tlsAnyHost}},
		},
		"the winner of a conflict": {
			a: []testSE{{"ns", "a", tlsAPI}, {"ns", "b", "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: HTTPS}]\n"}},
			b: []testSE{{"ns", "a", "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: HTTPS}]\n"}, {"ns", "b", tlsAPI}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			va, vb := compileSEs(t, tt.a...).Version(), compileSEs(t, tt.b...).Version()
			if va == "" || vb == "" {
				t.Fatalf("empty version: %q, %q", va, vb)
			}
			if (va == vb) != tt.same {
				t.Errorf("versions %s and %s: same = %v, want %v", va, vb, va == vb, tt.same)
			}
		})
	}
}

func TestCompileVersionIgnoresProblems(t *testing.T) {
	entries, _ := parseSEs(t, testSE{"ns", "a", tlsAPI})
	clean := Compile(entries, nil)
	problem := Problem{Ref: Ref{File: "bad.yaml", Line: 3}, Message: "invalid YAML", Severity: SeverityError}
	withProblem := Compile(entries, []Problem{problem})
	if clean.Version() != withProblem.Version() {
		t.Errorf("a problem changed the version: %s, then %s", clean.Version(), withProblem.Version())
	}
	if d := cmp.Diff([]string{"error: bad.yaml:3: invalid YAML"}, problemList(withProblem.Problems())); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

func TestCompileDoesNotModifyInput(t *testing.T) {
	entries, _ := parseSEs(t, testSE{"ns", "b", tlsAPI}, testSE{"ns", "a", tlsAPI})
	in := slices.Clone(entries)
	problems := make([]Problem, 1, 4)
	problems[0] = Problem{Message: "given"}
	a := Compile(in, problems)
	if !slices.Equal(in, entries) {
		t.Errorf("Compile reordered its input")
	}
	if len(a.Problems()) != 2 {
		t.Fatalf("want the given problem and one conflict, got:\n%s", problemLines(a.Problems()))
	}
	if got := problems[:cap(problems)][1]; got != (Problem{}) {
		t.Errorf("Compile wrote into the caller's problems array: %v", got)
	}
}

// TestCompileConfigWithEqualsCompileConfig: compiling with the last
// allowlist (its entry digests reused by pointer) gives the allowlist a
// fresh compile gives, after an entry changes, goes and comes back.
func TestCompileConfigWithEqualsCompileConfig(t *testing.T) {
	var docs []string
	for i := range 40 {
		docs = append(docs, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se-%d, namespace: ns-%d}
spec:
  hosts: [h%d.example.com, shared-%d.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`, i, i%3, i, i%5))
	}
	cfg, problems := ParseConfig("c.yaml", []byte(strings.Join(docs, "---\n")))
	last := CompileConfig(cfg, problems)
	for step := range 30 {
		c := cfg
		c.Entries = slices.Clone(cfg.Entries)
		i := step % len(c.Entries)
		switch step % 3 {
		case 0:
			e := *c.Entries[i]
			e.Hosts = append(slices.Clone(e.Hosts), fmt.Sprintf("step-%d.example.com", step))
			c.Entries[i] = &e
		case 1:
			c.Entries = slices.Delete(c.Entries, i, i+1)
		}
		got := CompileConfigWith(c, problems, last)
		want := CompileConfig(c, problems)
		if got.Version() != want.Version() {
			t.Fatalf("step %d: version %s with the last allowlist, %s without", step, got.Version(), want.Version())
		}
		if diff := cmp.Diff(want.entryDigests, got.entryDigests); diff != "" {
			t.Fatalf("step %d: entry digests differ (-fresh +with last):\n%s", step, diff)
		}
		last = got
	}
}
