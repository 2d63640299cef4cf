package authz

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protopath"
	"google.golang.org/protobuf/reflect/protorange"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry"
)

// loadPolicies reads one input case and compiles its policies, as the
// gateway would get them.
func loadPolicies(t *testing.T, path string) ([]*serviceentry.AuthorizationPolicy, []serviceentry.Problem) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, problems := serviceentry.ParseConfig(filepath.Base(path), data)
	a := serviceentry.CompileConfig(c, problems)
	return a.AuthorizationPolicies(), a.Problems()
}

// validateHTTP runs protoc-gen-validate on the filters and on the RBAC
// configs they carry, and checks every regular expression.
func validateHTTP(t *testing.T, filters []*hcmv3.HttpFilter) {
	t.Helper()
	for _, f := range filters {
		if err := f.ValidateAll(); err != nil {
			t.Errorf("filter %s: %v", f.GetName(), err)
		}
		cfg := &rbachttpv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.ValidateAll(); err != nil {
			t.Errorf("RBAC config: %v", err)
		}
		checkRegexps(t, cfg)
	}
}

// validateNetwork is validateHTTP for network filters.
func validateNetwork(t *testing.T, filters []*listenerv3.Filter) {
	t.Helper()
	for _, f := range filters {
		if err := f.ValidateAll(); err != nil {
			t.Errorf("filter %s: %v", f.GetName(), err)
		}
		cfg := &rbacnetworkv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.ValidateAll(); err != nil {
			t.Errorf("RBAC config: %v", err)
		}
		checkRegexps(t, cfg)
	}
}

// checkRegexps compiles every RegexMatcher in m (Go's regexp is RE2, as
// Envoy's safe_regex).
func checkRegexps(t *testing.T, m proto.Message) {
	t.Helper()
	name := (&matcherv3.RegexMatcher{}).ProtoReflect().Descriptor().FullName()
	protorange.Range(m.ProtoReflect(), func(v protopath.Values) error {
		last := v.Index(-1)
		msg, ok := last.Value.Interface().(protoreflect.Message)
		if !ok || msg.Descriptor().FullName() != name {
			return nil
		}
		re := msg.Interface().(*matcherv3.RegexMatcher).GetRegex()
		if _, err := regexp.Compile(re); err != nil {
			t.Errorf("regex %q: %v", re, err)
		}
		return nil
	})
}

// TestGolden: testdata/in/<case>.yaml -> testdata/out/<case>.http.yaml and
// <case>.network.yaml (and <case>.problems.txt when the input has
// problems). Regenerate with `go test ./egress/authz -run Golden -update`.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	golden := testkit.NewGolden("testdata/out")
	total := 0
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		policies, problems := loadPolicies(t, in)
		total += len(policies)
		outputs := map[string][]byte{}
		if len(problems) > 0 {
			var lines []string
			for _, p := range problems {
				lines = append(lines, string(p.Severity)+": "+p.Error())
			}
			outputs["problems.txt"] = []byte(strings.Join(lines, "\n") + "\n")
		}
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(name, "invalid") {
				for _, p := range problems {
					if p.Severity == serviceentry.SeverityError {
						t.Errorf("unexpected error: %s", p.Error())
					}
				}
			}
			httpFilters := HTTPFilters(policies)
			networkFilters := NetworkFilters(policies)
			validateHTTP(t, httpFilters)
			validateNetwork(t, networkFilters)
			outputs["http.yaml"] = testkit.ProtoYAML(t, httpFilters)
			outputs["network.yaml"] = testkit.ProtoYAML(t, networkFilters)
			for suffix, got := range outputs {
				golden.Check(t, name+"."+suffix, got)
			}
		})
	}
	if total < 15 {
		t.Errorf("the golden inputs hold %d policies; keep at least 15", total)
	}
	golden.Stale(t, "*")
}

// TestDeterministic: the same policies in any order give the same bytes.
func TestDeterministic(t *testing.T) {
	policies, _ := loadPolicies(t, "testdata/in/multiple.yaml")
	more, _ := loadPolicies(t, "testdata/in/wildcards.yaml")
	policies = append(policies, more...)
	reversed := make([]*serviceentry.AuthorizationPolicy, len(policies))
	for i, p := range policies {
		reversed[len(policies)-1-i] = p
	}
	for i := 0; i < 5; i++ {
		a, b := HTTPFilters(policies), HTTPFilters(reversed)
		if len(a) != len(b) {
			t.Fatalf("%d filters vs %d", len(a), len(b))
		}
		for j := range a {
			if !proto.Equal(a[j], b[j]) {
				t.Errorf("HTTP filter %d differs by input order", j)
			}
			x, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a[j])
			y, _ := proto.MarshalOptions{Deterministic: true}.Marshal(b[j])
			if string(x) != string(y) {
				t.Errorf("HTTP filter %d bytes differ", j)
			}
		}
		n1, n2 := NetworkFilters(policies), NetworkFilters(reversed)
		if d := cmp.Diff(n1, n2, protocmp.Transform()); d != "" {
			t.Errorf("network filters differ by input order:\n%s", d)
		}
	}
}

// rbacOf unpacks the RBAC rules of HTTP filters.
func rbacOf(t *testing.T, filters []*hcmv3.HttpFilter) []*rbacv3.RBAC {
	t.Helper()
	var out []*rbacv3.RBAC
	for _, f := range filters {
		cfg := &rbachttpv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			t.Fatal(err)
		}
		out = append(out, cfg.GetRules())
	}
	return out
}

func policy(ns, name string, action serviceentry.AuthzAction, rules ...serviceentry.AuthzRule) *serviceentry.AuthorizationPolicy {
	return &serviceentry.AuthorizationPolicy{
		Ref:    serviceentry.Ref{Kind: serviceentry.KindAuthorizationPolicy, Namespace: ns, Name: name},
		Action: action, Rules: rules,
	}
}

// TestFilterOrderAndPresence: AUDIT, DENY, ALLOW; ALLOW whenever an ALLOW
// policy exists, AUDIT and DENY only with rules; names per rule.
func TestFilterOrderAndPresence(t *testing.T) {
	all := serviceentry.AuthzRule{}
	tests := map[string]struct {
		policies []*serviceentry.AuthorizationPolicy
		want     []string // "ACTION: policy names"
	}{
		"none":               {},
		"nil policy ignored": {policies: []*serviceentry.AuthorizationPolicy{nil}},
		"every action": {
			policies: []*serviceentry.AuthorizationPolicy{
				policy("ns", "allow", serviceentry.AuthzAllow, all, all),
				policy("ns", "deny", serviceentry.AuthzDeny, all),
				policy("ns", "audit", serviceentry.AuthzAudit, all),
			},
			want: []string{"LOG: ns/audit#0", "DENY: ns/deny#0", "ALLOW: ns/allow#0 ns/allow#1"},
		},
		"allow without rules still denies the rest": {
			policies: []*serviceentry.AuthorizationPolicy{policy("ns", "nothing", serviceentry.AuthzAllow)},
			want:     []string{"ALLOW: "},
		},
		"deny and audit without rules need no filter": {
			policies: []*serviceentry.AuthorizationPolicy{policy("ns", "d", serviceentry.AuthzDeny), policy("ns", "a", serviceentry.AuthzAudit)},
		},
		"duplicate names keep the first": {
			policies: []*serviceentry.AuthorizationPolicy{
				policy("ns", "dup", serviceentry.AuthzDeny, all, all),
				policy("ns", "dup", serviceentry.AuthzDeny, all),
			},
			want: []string{"DENY: ns/dup#0 ns/dup#1"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range rbacOf(t, HTTPFilters(tt.policies)) {
				var names []string
				for n := range r.GetPolicies() {
					names = append(names, n)
				}
				slices.Sort(names)
				got = append(got, r.GetAction().String()+": "+strings.Join(names, " "))
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("filters differ (-want +got):\n%s", d)
			}
			if n := len(NetworkFilters(tt.policies)); n != len(tt.want) {
				t.Errorf("%d network filters, want %d", n, len(tt.want))
			}
		})
	}
}

func TestPolicyName(t *testing.T) {
	ref := serviceentry.Ref{Namespace: "egress", Name: "allow-ci"}
	if got := PolicyName(ref, 2); got != "egress/allow-ci#2" {
		t.Errorf("PolicyName = %q", got)
	}
	tests := map[string]struct {
		ref  string
		rule int
		ok   bool
	}{
		"egress/allow-ci#2":            {"egress/allow-ci", 2, true},
		"ns/a.b#0":                     {"ns/a.b", 0, true},
		"ns/name#10":                   {"ns/name", 10, true},
		"ns/name":                      {},
		"ns/name#":                     {},
		"ns/name#-1":                   {},
		"ns/name#01":                   {},
		"ns/name#x":                    {},
		"name#1":                       {},
		"/name#1":                      {},
		"ns/#1":                        {},
		"a/b/c#1":                      {},
		"none":                         {},
		"rbac#1":                       {},
		"ns/name#1#2":                  {},
		"ns/name#99999999999999999999": {},
	}
	for in, tt := range tests {
		ref, rule, ok := ParsePolicyName(in)
		if ref != tt.ref || rule != tt.rule || ok != tt.ok {
			t.Errorf("ParsePolicyName(%q) = %q, %d, %v; want %q, %d, %v", in, ref, rule, ok, tt.ref, tt.rule, tt.ok)
		}
	}
	// Round trip.
	if r, n, ok := ParsePolicyName(PolicyName(ref, 7)); !ok || r != ref.String() || n != 7 {
		t.Errorf("round trip: %q, %d, %v", r, n, ok)
	}
}

// TestMatchers checks the matchers' regular expressions and forms against
// sample values: what Istio's documentation says each form matches.
func TestMatchers(t *testing.T) {
	principalName := func(p *rbacv3.Principal) *matcherv3.StringMatcher {
		return p.GetAuthenticated().GetPrincipalName()
	}
	// matches evaluates a StringMatcher the way Envoy does, for the forms
	// this package produces.
	matches := func(m *matcherv3.StringMatcher, s string) bool {
		fold := func(x string) string {
			if m.GetIgnoreCase() {
				return strings.ToLower(x)
			}
			return x
		}
		switch p := m.GetMatchPattern().(type) {
		case *matcherv3.StringMatcher_Exact:
			return fold(s) == fold(p.Exact)
		case *matcherv3.StringMatcher_Prefix:
			return strings.HasPrefix(fold(s), fold(p.Prefix))
		case *matcherv3.StringMatcher_Suffix:
			return strings.HasSuffix(fold(s), fold(p.Suffix))
		case *matcherv3.StringMatcher_SafeRegex:
			return regexp.MustCompile("^(?:" + p.SafeRegex.GetRegex() + ")$").MatchString(s)
		}
		t.Fatalf("unexpected matcher %v", m)
		return false
	}
	tests := []struct {
		name  string
		m     *matcherv3.StringMatcher
		match []string
		not   []string
	}{
		{"principal exact", principalName(principalID("cluster.local/ns/ci/sa/builder")),
			[]string{"spiffe://cluster.local/ns/ci/sa/builder"},
			[]string{"cluster.local/ns/ci/sa/builder", "spiffe://cluster.local/ns/ci/sa/builder2"}},
		{"principal prefix", principalName(principalID("cluster.local/ns/ci/*")),
			[]string{"spiffe://cluster.local/ns/ci/sa/a", "spiffe://cluster.local/ns/ci/"},
			[]string{"spiffe://cluster.local/ns/cd/sa/a"}},
		{"principal suffix", principalName(principalID("*/sa/deployer")),
			[]string{"spiffe://a/ns/b/sa/deployer"},
			[]string{"spiffe://a/ns/b/sa/deployer2"}},
		{"principal any", principalName(principalID("*")),
			[]string{"spiffe://a/ns/b/sa/c", "x"},
			[]string{""}},
		{"namespace exact", principalName(namespaceID("build")),
			[]string{"spiffe://cluster.local/ns/build/sa/x"},
			[]string{"spiffe://cluster.local/ns/build2/sa/x", "spiffe://cluster.local/ns/prebuild/sa/x", "build"}},
		{"namespace prefix", principalName(namespaceID("team-*")),
			[]string{"spiffe://td/ns/team-a/sa/x", "spiffe://td/ns/team-/sa/x"},
			[]string{"spiffe://td/ns/ateam-a/sa/x", "spiffe://td/ns/other/sa/team-a/"}},
		{"namespace suffix", principalName(namespaceID("*-prod")),
			[]string{"spiffe://td/ns/web-prod/sa/x"},
			[]string{"spiffe://td/ns/web-prod2/sa/x"}},
		{"namespace any", principalName(namespaceID("*")),
			[]string{"spiffe://td/ns/a/sa/x"},
			[]string{"spiffe://td/sa/x"}},
	}
	for _, tt := range tests {
		for _, s := range tt.match {
			if !matches(tt.m, s) {
				t.Errorf("%s: %v does not match %q", tt.name, tt.m, s)
			}
		}
		for _, s := range tt.not {
			if matches(tt.m, s) {
				t.Errorf("%s: %v matches %q", tt.name, tt.m, s)
			}
		}
	}

	// Hosts in HTTP: the :authority header, ignoring case and port.
	authority := func(h string) []*matcherv3.StringMatcher {
		var out []*matcherv3.StringMatcher
		for _, p := range authorityPermission(h).GetOrRules().GetRules() {
			out = append(out, p.GetHeader().GetStringMatch())
		}
		return out
	}
	anyMatch := func(ms []*matcherv3.StringMatcher, s string) bool {
		for _, m := range ms {
			if matches(m, s) {
				return true
			}
		}
		return false
	}
	hostTests := map[string]struct{ match, not []string }{
		"api.example.com": {
			match: []string{"api.example.com", "API.Example.COM", "api.example.com:8443"},
			not:   []string{"api.example.com.evil", "xapi.example.com", "a.api.example.com"},
		},
		"*.example.com": {
			match: []string{"a.example.com", "A.B.EXAMPLE.COM", "a.example.com:443"},
			not:   []string{"example.com", "a.example.com.evil", "a.example.com:", "a.example.comx:80"},
		},
		"*example.com": {
			match: []string{"example.com", "myexample.com", "a.example.com:80"},
			not:   []string{"example.org"},
		},
	}
	for h, tt := range hostTests {
		ms := authority(h)
		if len(ms) != 2 {
			t.Fatalf("%s: %d matchers", h, len(ms))
		}
		for _, s := range tt.match {
			if !anyMatch(ms, s) {
				t.Errorf("host %s does not match %q", h, s)
			}
		}
		for _, s := range tt.not {
			if anyMatch(ms, s) {
				t.Errorf("host %s matches %q", h, s)
			}
		}
	}
}

// TestNetworkHTTPOnlyFields checks the TCP semantics without golden files:
// ALLOW drops what needs HTTP, DENY loosens it.
func TestNetworkHTTPOnlyFields(t *testing.T) {
	methods := serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Methods: []string{"GET"}}}}
	header := serviceentry.AuthzRule{When: []serviceentry.AuthzCondition{{Key: "request.headers[x]", Values: []string{"y"}}}}
	ports := serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Ports: []string{"443"}}, {Paths: []string{"/x"}}}}

	rules := func(filters []*listenerv3.Filter) []*rbacv3.RBAC {
		var out []*rbacv3.RBAC
		for _, f := range filters {
			cfg := &rbacnetworkv3.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				t.Fatal(err)
			}
			out = append(out, cfg.GetRules())
		}
		return out
	}

	allow := rules(NetworkFilters([]*serviceentry.AuthorizationPolicy{policy("ns", "p", serviceentry.AuthzAllow, methods, header, ports)}))
	if len(allow) != 1 {
		t.Fatalf("%d filters", len(allow))
	}
	if _, ok := allow[0].GetPolicies()["ns/p#0"]; ok {
		t.Errorf("ALLOW rule with methods kept on TCP")
	}
	if _, ok := allow[0].GetPolicies()["ns/p#1"]; ok {
		t.Errorf("ALLOW rule with a header condition kept on TCP")
	}
	p2 := allow[0].GetPolicies()["ns/p#2"]
	if got := p2.GetPermissions()[0].GetDestinationPort(); got != 443 {
		t.Errorf("ALLOW rule ns/p#2 on TCP: want only the port operation, got %v", p2.GetPermissions()[0])
	}

	deny := rules(NetworkFilters([]*serviceentry.AuthorizationPolicy{policy("ns", "p", serviceentry.AuthzDeny, methods, header, ports)}))
	for _, name := range []string{"ns/p#0", "ns/p#1", "ns/p#2"} {
		pol := deny[0].GetPolicies()[name]
		if pol == nil {
			t.Fatalf("DENY rule %s dropped on TCP", name)
		}
		if !pol.GetPermissions()[0].GetAny() || !pol.GetPrincipals()[0].GetAny() {
			t.Errorf("DENY rule %s on TCP: want it to match everything, got %v", name, pol)
		}
	}
}
