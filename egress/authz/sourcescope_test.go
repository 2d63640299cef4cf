package authz

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry"
)

const sourceScopeYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: team-a}
spec:
  hosts: [a.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: team-b}
spec:
  hosts: [b.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team-b}
spec:
  hosts: [private.example]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-a}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-c}
spec:
  egress: [{hosts: ["./*"]}]
`

func TestSourceScope(t *testing.T) {
	c, problems := serviceentry.ParseConfig("s.yaml", []byte(sourceScopeYAML))
	a := serviceentry.CompileConfig(c, problems)
	pods := map[string][]netip.Addr{
		"team-a": {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")},
		"team-b": {netip.MustParseAddr("10.0.1.1")},
		"team-c": {netip.MustParseAddr("10.0.2.1")},
		"team-d": {netip.MustParseAddr("10.0.3.1")},
		"empty":  nil,
	}
	got := SourceScope(a, serviceentry.RegistryOnly, "", []string{"team-c"}, pods, 80)
	policy := func(ns, name string, action serviceentry.AuthzAction, ips []string, ops ...serviceentry.AuthzOperation) *serviceentry.AuthorizationPolicy {
		p := &serviceentry.AuthorizationPolicy{Ref: serviceentry.Ref{Kind: "AuthorizationPolicy", Namespace: ns, Name: name}, Action: action}
		for _, op := range ops {
			p.Rules = append(p.Rules, serviceentry.AuthzRule{From: []serviceentry.AuthzSource{{IPBlocks: ips}}, To: []serviceentry.AuthzOperation{op}})
		}
		return p
	}
	want := []*serviceentry.AuthorizationPolicy{
		// team-a's Sidecar keeps its own host: of three, two are
		// refused, so the rule names the one kept.
		policy("team-a", "source-scope", serviceentry.AuthzDeny, []string{"10.0.0.1", "10.0.0.2"}, serviceentry.AuthzOperation{NotHosts: []string{"a.example"}}),
		// team-c refuses everything by its Sidecar (audited: shadow,
		// named by the shorter complement), but private.example is not
		// exported to it (enforced).
		policy("team-c", "source-scope", serviceentry.AuthzDeny, []string{"10.0.2.1"}, serviceentry.AuthzOperation{Hosts: []string{"private.example"}}),
		policy("team-c", "source-scope-audit", serviceentry.AuthzShadowDeny, []string{"10.0.2.1"}, serviceentry.AuthzOperation{NotHosts: []string{"private.example"}}),
		// team-d has no Sidecar: exportTo only.
		policy("team-d", "source-scope", serviceentry.AuthzDeny, []string{"10.0.3.1"}, serviceentry.AuthzOperation{Hosts: []string{"private.example"}}),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("port 80 (-want +got):\n%s", diff)
	}
	// Port 443 lists a.example only, which team-a may reach.
	got443 := SourceScope(a, serviceentry.RegistryOnly, "", nil, pods, 443)
	var names []string
	for _, p := range got443 {
		names = append(names, p.Ref.String())
	}
	if want := []string{"team-c/source-scope"}; !slices.Equal(names, want) {
		t.Errorf("port 443: only team-c's Sidecar refuses a.example: got %v, want %v", names, want)
	}
	// Nothing scoped without pods, or without Sidecars and exportTo.
	if got := SourceScope(a, serviceentry.RegistryOnly, "", nil, nil, 80); got != nil {
		t.Errorf("no pods: %v", got)
	}
	plain, _ := serviceentry.ParseConfig("p.yaml", []byte(strings.Split(sourceScopeYAML, "---")[0]))
	if got := SourceScope(serviceentry.CompileConfig(plain, nil), serviceentry.RegistryOnly, "", nil, pods, 80); got != nil {
		t.Errorf("nothing scoped: %v", got)
	}
	// The policies translate (and pass Envoy's validation).
	if err := SourceScopeHTTP(got).ValidateAll(); err != nil {
		t.Error(err)
	}
	if err := SourceScopeNetwork(got443).ValidateAll(); err != nil {
		t.Error(err)
	}
	// Under ALLOW_ANY an unlisted host stays reachable: no complement.
	for _, p := range SourceScope(a, serviceentry.AllowAny, "", []string{"team-c"}, pods, 80) {
		for _, r := range p.Rules {
			for _, op := range r.To {
				if len(op.Hosts) == 0 {
					t.Errorf("%s: a notHosts-only rule under ALLOW_ANY: %+v", p.Ref, op)
				}
			}
		}
	}
	if cfg := SourceScopeHTTP(nil); cfg.Rules != nil || cfg.ShadowRules != nil {
		t.Errorf("no policies must enforce nothing: %v", cfg)
	}
	if ns, audit, ok := IsSourceScopePolicy("team-c/source-scope-audit"); !ok || !audit || ns != "team-c" {
		t.Errorf("IsSourceScopePolicy: %q %v %v", ns, audit, ok)
	}
	if _, _, ok := IsSourceScopePolicy("team-c/sidecar.default"); ok {
		t.Error("a Sidecar policy is no source-scope policy")
	}
}

// TestHostRulesMostSpecific checks hostRules against the routing's rule on
// random host sets: a request is refused exactly when its most specific
// listed host is a refused one.
func TestHostRulesMostSpecific(t *testing.T) {
	labels := []string{"a", "b", "c"}
	r := rand.New(rand.NewPCG(1, 2))
	name := func() string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[r.IntN(len(labels))]
		}
		return strings.Join(parts, ".") + ".test"
	}
	for round := range 500 {
		listed := map[string]bool{} // pattern -> refused
		for range 1 + r.IntN(8) {
			h := name()
			if r.IntN(2) == 0 {
				h = "*." + h
			}
			listed[h] = r.IntN(2) == 0
		}
		var refused, kept []string
		for h, no := range listed {
			if no {
				refused = append(refused, h)
			} else {
				kept = append(kept, h)
			}
		}
		complement := round%2 == 0
		rules := hostRules(slices.Clone(refused), slices.Clone(kept), complement)
		for range 30 {
			req := name()
			best := ""
			for h := range listed {
				if hostMatches(h, req) && (best == "" || specificity(h) > specificity(best)) {
					best = h
				}
			}
			if best == "" {
				if !complement && rulesMatch(rules, req) {
					t.Fatalf("round %d: unlisted %s matched without the complement form: %+v", round, req, rules)
				}
				continue // unlisted: refused by the routing (REGISTRY_ONLY)
			}
			if got := rulesMatch(rules, req); got != listed[best] {
				t.Fatalf("round %d: %s (most specific %s, refused %v): rules match %v\nrefused %v kept %v\nrules %+v", round, req, best, listed[best], got, refused, kept, rules)
			}
		}
	}
}

func hostMatches(pattern, h string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(h, suffix)
	}
	return pattern == h
}

// specificity orders the patterns matching one host: exact first, then the
// longer wildcard.
func specificity(p string) int {
	if !strings.HasPrefix(p, "*") {
		return 1 << 20
	}
	return len(p)
}

func rulesMatch(rules []serviceentry.AuthzRule, h string) bool {
	for _, r := range rules {
		for _, op := range r.To {
			in := len(op.Hosts) == 0 || slices.ContainsFunc(op.Hosts, func(p string) bool { return hostMatches(p, h) })
			out := slices.ContainsFunc(op.NotHosts, func(p string) bool { return hostMatches(p, h) })
			if in && !out {
				return true
			}
		}
	}
	return false
}
