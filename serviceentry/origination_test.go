package serviceentry

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testDR is one DestinationRule of a compile test: its namespace, name and
// spec (YAML lines as they sit under "spec:", indented by two spaces).
type testDR struct{ ns, name, spec string }

// parseConfig parses each ServiceEntry as "<name>.yaml" and each
// DestinationRule as "<name>.dr.yaml". Warnings are returned for
// CompileConfig; an error fails the test.
func parseConfig(t *testing.T, ses []testSE, drs []testDR) (Config, []Problem) {
	t.Helper()
	c := Config{}
	c.Entries, _ = parseSEs(t, ses...)
	var problems []Problem
	for _, dr := range drs {
		doc := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", dr.name, dr.ns, dr.spec)
		pc, ps := ParseConfig(dr.name+".dr.yaml", []byte(doc))
		if hasError(ps) || len(pc.Rules) != 1 {
			t.Fatalf("parsing %s/%s: %d rules, problems:\n%s", dr.ns, dr.name, len(pc.Rules), problemLines(ps))
		}
		c.Rules = append(c.Rules, pc.Rules...)
		problems = append(problems, ps...)
	}
	return c, problems
}

// compileConfig parses and compiles the resources, in the order given.
// Validation warnings are left out of the snapshot, so that its problems
// are CompileConfig's own.
func compileConfig(t *testing.T, ses []testSE, drs []testDR) *Allowlist {
	t.Helper()
	c, _ := parseConfig(t, ses, drs)
	return CompileConfig(c, nil)
}

// originations lists every host port with TLS as
// "host number: MODE sni=... [sans=a,b] rule=ns/name [unsupported: ...]".
func originations(a *Allowlist) []string {
	var out []string
	for _, h := range a.Hosts() {
		for _, p := range h.Ports {
			if p.TLS == nil {
				continue
			}
			s := fmt.Sprintf("%s %d: %s sni=%s", h.Name, p.Number, p.TLS.Mode, p.TLS.SNI)
			if len(p.TLS.SubjectAltNames) > 0 {
				s += " sans=" + strings.Join(p.TLS.SubjectAltNames, ",")
			}
			s += " rule=" + p.TLS.Rule.String()
			if p.TLS.Unsupported != "" {
				s += " unsupported: " + p.TLS.Unsupported
			}
			out = append(out, s)
		}
	}
	return out
}

// Specs of the tests below.
const (
	httpAPI    = "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: pg, protocol: TCP}]\n"
	httpWWW    = "  hosts: [www.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
	httpDeep   = "  hosts: [a.b.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
	httpWildB  = "  hosts: ['*.b.example.com']\n  resolution: STATIC\n  endpoints: [{address: 192.0.2.1}]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
	httpNone   = "  hosts: [plain.example.com]\n  resolution: NONE\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
	httpAndTLS = "  hosts: [mixed.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}, {number: 8443, name: https, protocol: HTTPS}]\n"
)

// drTLS is a rule spec for host with the given tls block (YAML flow
// mapping content).
func drTLS(host, tls string) string {
	return "  host: '" + host + "'\n  trafficPolicy:\n    tls: {" + tls + "}\n"
}

func TestCompileConfigOrigination(t *testing.T) {
	tests := map[string]struct {
		ses          []testSE
		drs          []testDR
		want         []string // originations
		wantRules    []string // Rules(), as ns/name
		wantProblems []string // problemList
	}{
		"exact rule, SIMPLE: every HTTP and TCP port of the host": {
			ses:       []testSE{{"ns", "api", httpAPI}, {"ns", "www", httpWWW}},
			drs:       []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
			want:      []string{"api.example.com 80: SIMPLE sni=api.example.com rule=ns/api", "api.example.com 5432: SIMPLE sni=api.example.com rule=ns/api"},
			wantRules: []string{"ns/api"},
		},
		"MUTUAL with sni and the rule's subjectAltNames": {
			ses: []testSE{{"ns", "api", httpAPI + "  subjectAltNames: [se.example.com]\n"}},
			drs: []testDR{{"ns", "api", drTLS("api.example.com", "mode: MUTUAL, credentialName: partner, sni: tls.example.com, subjectAltNames: [rule.example.com]")}},
			want: []string{
				"api.example.com 80: MUTUAL sni=tls.example.com sans=rule.example.com rule=ns/api",
				"api.example.com 5432: MUTUAL sni=tls.example.com sans=rule.example.com rule=ns/api",
			},
			wantRules: []string{"ns/api"},
		},
		"subjectAltNames from the ServiceEntry when the rule has none": {
			ses:       []testSE{{"ns", "www", httpWWW + "  subjectAltNames: ['spiffe://example.com/www']\n"}},
			drs:       []testDR{{"ns", "www", drTLS("www.example.com", "mode: SIMPLE")}},
			want:      []string{"www.example.com 80: SIMPLE sni=www.example.com sans=spiffe://example.com/www rule=ns/www"},
			wantRules: []string{"ns/www"},
		},
		"wildcard rule covers exact and wildcard hosts": {
			ses: []testSE{{"ns", "www", httpWWW}, {"ns", "deep", httpDeep}, {"ns", "wild", httpWildB}},
			drs: []testDR{{"ns", "all", drTLS("*.example.com", "mode: SIMPLE, sni: front.example.com")}},
			want: []string{
				"*.b.example.com 80: SIMPLE sni=front.example.com rule=ns/all",
				"a.b.example.com 80: SIMPLE sni=front.example.com rule=ns/all",
				"www.example.com 80: SIMPLE sni=front.example.com rule=ns/all",
			},
			wantRules: []string{"ns/all"},
		},
		"exact over wildcard, longer suffix over shorter": {
			ses: []testSE{{"ns", "www", httpWWW}, {"ns", "deep", httpDeep}, {"ns", "wild", httpWildB}, {"ns", "api", httpAPI}},
			drs: []testDR{
				{"ns", "a-all", drTLS("*.example.com", "mode: SIMPLE")},
				{"ns", "b-deep", drTLS("*.b.example.com", "mode: SIMPLE, sni: b.example.com")},
				{"ns", "c-www", drTLS("www.example.com", "mode: MUTUAL, credentialName: www")},
				{"ns", "d-api", drTLS("api.example.com", "mode: DISABLE")},
			},
			want: []string{
				"*.b.example.com 80: SIMPLE sni=b.example.com rule=ns/b-deep",
				"a.b.example.com 80: SIMPLE sni=b.example.com rule=ns/b-deep",
				"www.example.com 80: MUTUAL sni=www.example.com rule=ns/c-www",
			},
			wantRules: []string{"ns/a-all", "ns/b-deep", "ns/c-www", "ns/d-api"},
		},
		"a narrower wildcard rule does not apply to a broader wildcard host": {
			ses:       []testSE{{"ns", "wild", "  hosts: ['*.example.com']\n  resolution: STATIC\n  endpoints: [{address: 192.0.2.1}]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"}},
			drs:       []testDR{{"ns", "deep", drTLS("*.b.example.com", "mode: SIMPLE, sni: b.example.com")}},
			wantRules: []string{"ns/deep"},
			wantProblems: []string{
				`warning: deep.dr.yaml:1: DestinationRule ns/deep: spec.host: no ServiceEntry lists a host that "*.b.example.com" covers; the rule has no effect`,
			},
		},
		"a wildcard rule does not cover its bare suffix": {
			ses:       []testSE{{"ns", "bare", "  hosts: [example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"}},
			drs:       []testDR{{"ns", "all", drTLS("*.example.com", "mode: SIMPLE")}},
			wantRules: []string{"ns/all"},
			wantProblems: []string{
				`warning: all.dr.yaml:1: DestinationRule ns/all: spec.host: no ServiceEntry lists a host that "*.example.com" covers; the rule has no effect`,
			},
		},
		"a wildcard rule hidden by exact rules everywhere is not reported": {
			ses: []testSE{{"ns", "www", httpWWW}},
			drs: []testDR{
				{"ns", "all", drTLS("*.example.com", "mode: SIMPLE")},
				{"ns", "www", drTLS("www.example.com", "mode: DISABLE")},
			},
			wantRules: []string{"ns/all", "ns/www"},
		},
		"same host: the first by namespace/name wins": {
			ses: []testSE{{"ns", "www", httpWWW}},
			drs: []testDR{
				{"zz", "a", drTLS("www.example.com", "mode: MUTUAL, credentialName: zz")},
				{"aa", "z", drTLS("WWW.example.com.", "mode: SIMPLE")},
				{"aa", "y", drTLS("*.example.com", "mode: SIMPLE")},
				{"bb", "x", drTLS("*.example.com", "mode: SIMPLE")},
			},
			want:      []string{"www.example.com 80: SIMPLE sni=www.example.com rule=aa/z"},
			wantRules: []string{"aa/y", "aa/z"},
			wantProblems: []string{
				`warning: x.dr.yaml:1: DestinationRule bb/x: spec.host: conflicts with DestinationRule aa/y for host "*.example.com"; ignored: egressd applies the first rule by namespace/name, so merge the two`,
				`warning: a.dr.yaml:1: DestinationRule zz/a: spec.host: conflicts with DestinationRule aa/z for host "www.example.com"; ignored: egressd applies the first rule by namespace/name, so merge the two`,
			},
		},
		"port level over top level": {
			ses: []testSE{{"ns", "api", httpAPI}},
			drs: []testDR{{"ns", "api", `  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 5432}
      tls: {mode: MUTUAL, credentialName: db}
    - port: {number: 9999}
      tls: {mode: MUTUAL, credentialName: other}
`}},
			want: []string{
				"api.example.com 80: SIMPLE sni=api.example.com rule=ns/api",
				"api.example.com 5432: MUTUAL sni=api.example.com rule=ns/api",
			},
			wantRules: []string{"ns/api"},
		},
		"port level DISABLE turns off the top level": {
			ses: []testSE{{"ns", "api", httpAPI}},
			drs: []testDR{{"ns", "api", `  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: DISABLE}
    - port: {number: 5432}
      connectionPool: {tcp: {maxConnections: 3}}
`}},
			want:      []string{"api.example.com 5432: SIMPLE sni=api.example.com rule=ns/api"},
			wantRules: []string{"ns/api"},
		},
		"port level only": {
			ses: []testSE{{"ns", "api", httpAPI}},
			drs: []testDR{{"ns", "api", `  host: api.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE}
`}},
			want:      []string{"api.example.com 80: SIMPLE sni=api.example.com rule=ns/api"},
			wantRules: []string{"ns/api"},
		},
		"DISABLE, ISTIO_MUTUAL and no tls: no origination": {
			ses: []testSE{{"ns", "api", httpAPI}, {"ns", "www", httpWWW}, {"ns", "deep", httpDeep}},
			drs: []testDR{
				{"ns", "api", drTLS("api.example.com", "mode: DISABLE")},
				{"ns", "www", drTLS("www.example.com", "mode: ISTIO_MUTUAL")},
				{"ns", "deep", "  host: a.b.example.com\n"},
			},
			wantRules: []string{"ns/api", "ns/deep", "ns/www"},
		},
		"TLS-class ports pass through, with a warning": {
			ses: []testSE{{"ns", "mixed", httpAndTLS}},
			drs: []testDR{{"ns", "mixed", `  host: mixed.example.com
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: MUTUAL, credentialName: m}
`}},
			want:      []string{"mixed.example.com 80: SIMPLE sni=mixed.example.com rule=ns/mixed"},
			wantRules: []string{"ns/mixed"},
			wantProblems: []string{
				`warning: mixed.dr.yaml:1: DestinationRule ns/mixed: spec.trafficPolicy.tls: the client already sends TLS on port 443 of "mixed.example.com" (protocol TLS in ServiceEntry ns/mixed); egressd passes it through and does not originate: declare the port HTTP or TCP for the gateway to originate TLS, or set mode DISABLE for it`,
				`warning: mixed.dr.yaml:1: DestinationRule ns/mixed: spec.trafficPolicy.portLevelSettings: the client already sends TLS on port 8443 of "mixed.example.com" (protocol HTTPS in ServiceEntry ns/mixed); egressd passes it through and does not originate: declare the port HTTP or TCP for the gateway to originate TLS, or set mode DISABLE for it`,
			},
		},
		"resolution NONE: unsupported, fail closed": {
			ses:       []testSE{{"ns", "plain", httpNone}},
			drs:       []testDR{{"ns", "plain", drTLS("plain.example.com", "mode: SIMPLE")}},
			want:      []string{"plain.example.com 80: SIMPLE sni=plain.example.com rule=ns/plain unsupported: TLS origination needs resolution DNS, DNS_ROUND_ROBIN or STATIC; plain.example.com uses NONE"},
			wantRules: []string{"ns/plain"},
			wantProblems: []string{
				`error: plain.dr.yaml:1: DestinationRule ns/plain: spec.trafficPolicy.tls: ServiceEntry ns/plain allows "plain.example.com" port 80 with resolution NONE, where the gateway cannot originate TLS: it refuses this traffic rather than send it in plaintext; set the ServiceEntry's resolution to DNS, DNS_ROUND_ROBIN or STATIC`,
			},
		},
		"wildcard host without sni: unsupported, fail closed": {
			ses:       []testSE{{"ns", "wild", httpWildB}},
			drs:       []testDR{{"ns", "wild", drTLS("*.b.example.com", "mode: SIMPLE")}},
			want:      []string{"*.b.example.com 80: SIMPLE sni=*.b.example.com rule=ns/wild unsupported: TLS origination to the wildcard host *.b.example.com needs an explicit sni"},
			wantRules: []string{"ns/wild"},
			wantProblems: []string{
				`error: wild.dr.yaml:1: DestinationRule ns/wild: spec.trafficPolicy.tls: "*.b.example.com" port 80 (ServiceEntry ns/wild) is a wildcard host, which is no server name to send: the gateway refuses this traffic rather than send it in plaintext; set sni, or list the hosts exactly`,
			},
		},
		"no ServiceEntry lists the host": {
			ses:       []testSE{{"ns", "www", httpWWW}},
			drs:       []testDR{{"ns", "gone", drTLS("gone.example.com", "mode: SIMPLE")}},
			wantRules: []string{"ns/gone"},
			wantProblems: []string{
				`warning: gone.dr.yaml:1: DestinationRule ns/gone: spec.host: no ServiceEntry lists host "gone.example.com"; the rule has no effect`,
			},
		},
		"no rules": {
			ses: []testSE{{"ns", "www", httpWWW}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := compileConfig(t, tt.ses, tt.drs)
			if d := cmp.Diff(tt.want, originations(a)); d != "" {
				t.Errorf("originations (-want +got):\n%s", d)
			}
			var rules []string
			for _, r := range a.Rules() {
				rules = append(rules, r.Ref.String())
			}
			if d := cmp.Diff(tt.wantRules, rules); d != "" {
				t.Errorf("rules (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantProblems, problemList(a.Problems())); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestCompileConfigOriginationFields(t *testing.T) {
	a := compileConfig(t,
		[]testSE{{"ns", "api", httpAPI + "  subjectAltNames: [se.example.com]\n"}},
		[]testDR{{"ns", "api", drTLS("api.example.com", "mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem")}},
	)
	_, hp, ok := a.MatchPort("API.example.com.", 80)
	if !ok || hp.TLS == nil {
		t.Fatalf("MatchPort: %v, %+v; want port 80 with TLS", ok, hp)
	}
	want := &Origination{
		TLSSettings:     TLSSettings{Mode: TLSMutual, ClientCertificate: "/c.pem", PrivateKey: "/k.pem", CACertificates: "/ca.pem"},
		Rule:            Ref{Kind: "DestinationRule", Namespace: "ns", Name: "api", File: "api.dr.yaml", Line: 1},
		SNI:             "api.example.com",
		SubjectAltNames: []string{"se.example.com"},
	}
	if d := cmp.Diff(want, hp.TLS); d != "" {
		t.Errorf("origination (-want +got):\n%s", d)
	}
	// The snapshot shares nothing mutable with the rule.
	want.SubjectAltNames[0] = "changed"
	if r := a.Rules()[0]; r.TLS.SubjectAltNames != nil {
		t.Errorf("rule's subjectAltNames: %v, want none", r.TLS.SubjectAltNames)
	}
	if hp.TLS.SubjectAltNames[0] == "changed" || hp.Entry.SubjectAltNames[0] != "se.example.com" {
		t.Errorf("origination shares subjectAltNames with the ServiceEntry")
	}
}

func TestCompileConfigVersion(t *testing.T) {
	ses := []testSE{{"ns", "api", httpAPI}}
	tests := map[string]struct {
		a, b []testDR
		same bool
	}{
		"identical": {
			a:    []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
			b:    []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
			same: true,
		},
		"a rule added": {
			b: []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
		},
		"mode": {
			a: []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
			b: []testDR{{"ns", "api", drTLS("api.example.com", "mode: MUTUAL, credentialName: api")}},
		},
		"credential": {
			a: []testDR{{"ns", "api", drTLS("api.example.com", "mode: MUTUAL, credentialName: api")}},
			b: []testDR{{"ns", "api", drTLS("api.example.com", "mode: MUTUAL, credentialName: api2")}},
		},
		"sni": {
			a: []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE")}},
			b: []testDR{{"ns", "api", drTLS("api.example.com", "mode: SIMPLE, sni: other.example.com")}},
		},
		"a rule that matches no host": {
			a: []testDR{{"ns", "x", drTLS("x.example.com", "mode: SIMPLE")}},
			b: []testDR{{"ns", "x", drTLS("x.example.com", "mode: MUTUAL, credentialName: x")}},
		},
		"DISABLE instead of no rule": {
			b: []testDR{{"ns", "api", drTLS("api.example.com", "mode: DISABLE")}},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			va, vb := compileConfig(t, ses, tt.a).Version(), compileConfig(t, ses, tt.b).Version()
			if (va == vb) != tt.same {
				t.Errorf("versions %s and %s: same = %v, want %v", va, vb, va == vb, tt.same)
			}
		})
	}
	// Compile is CompileConfig without rules.
	entries, _ := parseSEs(t, ses...)
	if got, want := Compile(entries, nil).Version(), CompileConfig(Config{Entries: entries}, nil).Version(); got != want {
		t.Errorf("Compile version %s, CompileConfig without rules %s", got, want)
	}
}

// TestCompileConfigDeterministic compiles the same resources in every
// rotation and the reverse of the input order: version, originations,
// rules and problems must not change.
func TestCompileConfigDeterministic(t *testing.T) {
	c, warnings := parseConfig(t,
		[]testSE{{"ns", "api", httpAPI}, {"ns", "www", httpWWW}, {"ns", "deep", httpDeep}, {"ns", "wild", httpWildB}, {"ns", "plain", httpNone}, {"ns", "mixed", httpAndTLS}},
		[]testDR{
			{"ns", "a", drTLS("*.example.com", "mode: SIMPLE, sni: front.example.com")},
			{"ns", "b", drTLS("*.example.com", "mode: MUTUAL, credentialName: b")},
			{"ns", "c", drTLS("www.example.com", "mode: MUTUAL, credentialName: c")},
			{"other", "c", drTLS("www.example.com", "mode: SIMPLE")},
			{"ns", "d", drTLS("gone.example.com", "mode: SIMPLE")},
			{"ns", "e", drTLS("api.example.com", "mode: SIMPLE")},
		},
	)
	want := CompileConfig(c, warnings)
	if len(want.Problems()) < 4 {
		t.Fatalf("want several problems to order, got:\n%s", problemLines(want.Problems()))
	}
	orders := map[string]Config{}
	reversed := Config{Entries: slices.Clone(c.Entries), Rules: slices.Clone(c.Rules)}
	slices.Reverse(reversed.Entries)
	slices.Reverse(reversed.Rules)
	orders["reversed"] = reversed
	for i := 1; i < len(c.Rules); i++ {
		orders[fmt.Sprintf("rules rotated by %d", i)] = Config{
			Entries: c.Entries,
			Rules:   append(slices.Clone(c.Rules[i:]), c.Rules[:i]...),
		}
	}
	for name, in := range orders {
		t.Run(name, func(t *testing.T) {
			got := CompileConfig(in, warnings)
			if got.Version() != want.Version() {
				t.Errorf("Version = %s, want %s", got.Version(), want.Version())
			}
			if d := cmp.Diff(originations(want), originations(got)); d != "" {
				t.Errorf("originations (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want.Rules(), got.Rules()); d != "" {
				t.Errorf("rules (-want +got):\n%s", d)
			}
			if d := cmp.Diff(problemList(want.Problems()), problemList(got.Problems())); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestCompileConfigDoesNotModifyInput(t *testing.T) {
	c, _ := parseConfig(t, []testSE{{"ns", "www", httpWWW}}, []testDR{
		{"ns", "b", drTLS("www.example.com", "mode: SIMPLE")},
		{"ns", "a", drTLS("www.example.com", "mode: SIMPLE")},
	})
	rules := slices.Clone(c.Rules)
	a := CompileConfig(c, nil)
	if !slices.Equal(rules, c.Rules) {
		t.Errorf("CompileConfig reordered its input")
	}
	if len(a.Rules()) != 1 || a.Rules()[0].Ref.Name != "a" {
		t.Errorf("Rules: %v, want ns/a", a.Rules())
	}
}

// TestInvalidRuleFailsClosed: a DestinationRule that asks for TLS but is
// invalid keeps its host from being sent in plaintext; a valid rule for the
// same host still wins over it, and a broken rule that asks for no TLS
// changes nothing.
func TestInvalidRuleFailsClosed(t *testing.T) {
	const entries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: ns}
spec:
  hosts: [api.partner.example, api.other.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a-broken, namespace: ns}
spec:
  host: api.partner.example
  trafficPolicy: {tls: {mode: MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b-broken-disable, namespace: ns}
spec:
  host: api.other.example
  trafficPolicy: {tls: {mode: DISABLE, credentialName: x, clientCertificate: /a}}
`
	c, problems := ParseConfig("f.yaml", []byte(entries))
	a := CompileConfig(c, problems)
	_, hp, _ := a.MatchPort("api.partner.example", 80)
	if hp.TLS == nil || !strings.Contains(hp.TLS.Unsupported, "DestinationRule ns/a-broken asks for TLS origination but is invalid") {
		t.Errorf("port 80 of the broken rule's host: %+v, want Unsupported", hp.TLS)
	}
	if _, hp, _ := a.MatchPort("api.partner.example", 443); hp.TLS != nil {
		t.Errorf("the client's own TLS port: %+v, want no origination", hp.TLS)
	}
	if _, hp, _ := a.MatchPort("api.other.example", 80); hp.TLS != nil {
		t.Errorf("a broken rule without SIMPLE/MUTUAL changed the host: %+v", hp.TLS)
	}

	fixed := entries + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: z-valid, namespace: ns}
spec:
  host: api.partner.example
  trafficPolicy: {tls: {mode: SIMPLE}}
`
	c, problems = ParseConfig("f.yaml", []byte(fixed))
	a = CompileConfig(c, problems)
	if _, hp, _ := a.MatchPort("api.partner.example", 80); hp.TLS == nil || hp.TLS.Unsupported != "" || hp.TLS.Rule.Name != "z-valid" {
		t.Errorf("with a valid rule for the host: %+v, want z-valid's SIMPLE", hp.TLS)
	}
}
