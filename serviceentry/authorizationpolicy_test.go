package serviceentry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// apYAML wraps spec (YAML lines as they sit under "spec:", indented by two
// spaces) into an AuthorizationPolicy ns/ap that starts on line 1 of
// ap.yaml.
func apYAML(spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ap\n  namespace: ns\nspec:\n" + spec
}

// validatePolicyYAML decodes one AuthorizationPolicy and validates it.
// Decoding must succeed.
func validatePolicyYAML(t *testing.T, spec string) (*AuthorizationPolicy, []Problem) {
	t.Helper()
	objects, problems := Decode("ap.yaml", []byte(apYAML(spec)))
	if len(problems) != 0 || len(objects) != 1 {
		t.Fatalf("Decode: %d objects, problems:\n%s", len(objects), problemLines(problems))
	}
	return ValidateAuthorizationPolicy(objects[0])
}

// withPrefix turns "severity: rest" lines into whole problem lines of the
// resource whose problems start with prefix.
func withPrefix(prefix string, lines []string) string {
	var out []string
	for _, w := range lines {
		sev, rest, _ := strings.Cut(w, ": ")
		out = append(out, sev+": "+prefix+rest)
	}
	return strings.Join(out, "\n")
}

const apPrefix = "ap.yaml:1: AuthorizationPolicy ns/ap: "

// rule is a spec with one rule whose body is the given YAML (indented for
// a "  - " list item).
func rule(action, body string) string {
	return "  action: " + action + "\n  rules:\n  - " + body + "\n"
}

func TestValidateAuthorizationPolicyInvalid(t *testing.T) {
	tests := map[string]struct {
		spec string
		want []string // "severity: field: message", without apPrefix
	}{
		"custom action": {
			spec: "  action: CUSTOM\n  provider: {name: opa}\n",
			want: []string{
				`error: spec.action: CUSTOM (external authorization) is not supported by egressd; use ALLOW or DENY`,
				`error: spec.provider: not supported by egressd: a provider names the external authorizer of action CUSTOM, which egressd does not support; remove it`,
			},
		},
		"provider without custom": {
			spec: "  provider: {name: opa}\n",
			want: []string{`error: spec.provider: not supported by egressd: a provider names the external authorizer of action CUSTOM, which egressd does not support; remove it`},
		},
		"target refs": {
			spec: "  targetRefs: [{kind: Gateway, name: egress}]\n",
			want: []string{`error: spec.targetRefs: not supported by egressd, which applies policies to its gateway by label; use spec.selector.matchLabels, or no selector`},
		},
		"selector labels": {
			spec: "  selector: {matchLabels: {'app/x/y': egress, tier: 'a b'}}\n",
			want: []string{
				`error: spec.selector.matchLabels[app/x/y]: "app/x/y" is not a valid label key: use an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`,
				`error: spec.selector.matchLabels[tier]: "a b" is not a valid label value: use at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit (wildcards are not supported)`,
			},
		},
		"principal wildcard in the middle": {
			spec: rule("ALLOW", "from: [{source: {principals: ['cluster.local/ns/*/sa/x']}}]"),
			want: []string{`error: spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/*/sa/x" has a "*" in the middle; a "*" may only stand for a prefix ("*x") or a suffix ("x*")`},
		},
		"principal with two wildcards": {
			spec: rule("ALLOW", "from: [{source: {notPrincipals: ['*/ns/a/*']}}]"),
			want: []string{`error: spec.rules[0].from[0].source.notPrincipals[0]: "*/ns/a/*" has 2 "*"; use at most one, as a prefix ("*x") or a suffix ("x*")`},
		},
		"principal with spiffe scheme": {
			spec: rule("ALLOW", "from: [{source: {principals: ['spiffe://td/ns/a/sa/b']}}]"),
			want: []string{`error: spec.rules[0].from[0].source.principals[0]: "spiffe://td/ns/a/sa/b" starts with "spiffe://"; Istio writes principals without it: "td/ns/a/sa/b"`},
		},
		"empty principal": {
			spec: rule("ALLOW", "from: [{source: {principals: ['']}}]"),
			want: []string{`error: spec.rules[0].from[0].source.principals[0]: empty value; remove it`},
		},
		"namespace": {
			spec: rule("DENY", "from: [{source: {namespaces: [Team_A, 'a*b'], notNamespaces: ['-x']}}]"),
			want: []string{
				`error: spec.rules[0].from[0].source.namespaces[0]: "Team_A" is not a namespace: a namespace has lower-case letters, digits and "-" only (with one "*" as a prefix or suffix)`,
				`error: spec.rules[0].from[0].source.namespaces[1]: "a*b" has a "*" in the middle; a "*" may only stand for a prefix ("*x") or a suffix ("x*")`,
				`error: spec.rules[0].from[0].source.notNamespaces[0]: "-x" is not a valid namespace: use at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit`,
			},
		},
		"ip blocks": {
			spec: rule("DENY", "from: [{source: {ipBlocks: [10.0.0.0/33, example.com], notIpBlocks: ['fe80::1%eth0']}}]"),
			want: []string{
				`error: spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not a valid CIDR range; write it as an IP address and prefix length, e.g. "192.0.2.0/24"`,
				`error: spec.rules[0].from[0].source.ipBlocks[1]: "example.com" is not an IP address or CIDR range, e.g. "192.0.2.10" or "192.0.2.0/24"`,
				`error: spec.rules[0].from[0].source.notIpBlocks[0]: "fe80::1%eth0" has an IPv6 zone; remove "%eth0"`,
			},
		},
		"unsupported source fields": {
			spec: rule("ALLOW", "from: [{source: {requestPrincipals: ['*'], notRemoteIpBlocks: [10.0.0.1], notServiceAccounts: [a/b], notTrustDomains: [td]}}]"),
			want: []string{
				`error: spec.rules[0].from[0].source.requestPrincipals: not supported by egressd: request principals come from JWTs (RequestAuthentication), which egressd does not check`,
				`error: spec.rules[0].from[0].source.notRemoteIpBlocks: not supported by egressd: egressd does not trust X-Forwarded-For or PROXY protocol addresses; use notIpBlocks (the connection's source)`,
				`error: spec.rules[0].from[0].source.notServiceAccounts: not supported by egressd: use notPrincipals, e.g. "*/ns/<namespace>/sa/<account>"`,
				`error: spec.rules[0].from[0].source.notTrustDomains: not supported by egressd: use notPrincipals, e.g. "example.org/*"`,
			},
		},
		"empty source and operation": {
			spec: rule("ALLOW", "from: [{source: {}}, {}]\n    to: [{operation: {}}]"),
			want: []string{
				`error: spec.rules[0].from[0].source: empty: a source needs at least one field (Istio requires it); remove the from item to match any source`,
				`error: spec.rules[0].from[1].source: missing; write from: [{source: {...}}], or remove the item`,
				`error: spec.rules[0].to[0].operation: empty: an operation needs at least one field (Istio requires it); remove the to item to match any operation`,
			},
		},
		"ports": {
			spec: rule("ALLOW", "to: [{operation: {ports: ['0', '65536', http], notPorts: ['1-2']}}]"),
			want: []string{
				`error: spec.rules[0].to[0].operation.ports[0]: 0 is out of range; use 1-65535`,
				`error: spec.rules[0].to[0].operation.ports[1]: 65536 is out of range; use 1-65535`,
				`error: spec.rules[0].to[0].operation.ports[2]: "http" is not a port number; write a number from 1 to 65535 (ranges and names are not supported)`,
				`error: spec.rules[0].to[0].operation.notPorts[0]: "1-2" is not a port number; write a number from 1 to 65535 (ranges and names are not supported)`,
			},
		},
		"methods": {
			spec: rule("ALLOW", "to: [{operation: {methods: [post, 'GE T', 'G*']}}]"),
			want: []string{
				`error: spec.rules[0].to[0].operation.methods[0]: "post": methods are case-sensitive and written in upper case: write "POST"`,
				`error: spec.rules[0].to[0].operation.methods[1]: "GE T" is not an HTTP method; use an upper-case method such as GET or POST, or "*" for any`,
				`error: spec.rules[0].to[0].operation.methods[2]: "G*" is not an HTTP method; use an upper-case method such as GET or POST, or "*" for any`,
			},
		},
		"paths": {
			spec: rule("ALLOW", "to: [{operation: {paths: [api, '/a/*/b', '/a?b=c', '/{**}', '/a b'], notPaths: ['**']}}]"),
			want: []string{
				`error: spec.rules[0].to[0].operation.paths[0]: "api" does not start with "/"; write the path as sent, e.g. "/api", or a suffix match such as "*.png"`,
				`error: spec.rules[0].to[0].operation.paths[1]: "/a/*/b" has a "*" in the middle; a "*" may only stand for a prefix ("*x") or a suffix ("x*")`,
				`error: spec.rules[0].to[0].operation.paths[2]: "/a?b=c" contains a query or fragment; paths are matched without them: remove everything from "?b=c"`,
				`error: spec.rules[0].to[0].operation.paths[3]: "/{**}" uses a path template, which egressd does not support; use a prefix ("/a/*") or suffix ("*.png") match`,
				`error: spec.rules[0].to[0].operation.paths[4]: "/a b" contains a space or control character; write it percent-encoded as sent`,
				`error: spec.rules[0].to[0].operation.notPaths[0]: "**" has 2 "*"; use at most one, as a prefix ("*x") or a suffix ("x*")`,
			},
		},
		"hosts": {
			spec: rule("ALLOW", "to: [{operation: {hosts: ['*', 'a.example.com:8080', '10.0.0.1', 'a.*.com', 'api.*', 'a..b'], notHosts: ['*x_y.com']}}]"),
			want: []string{
				`error: spec.rules[0].to[0].operation.hosts[0]: "*" matches every host; remove the field to match any host`,
				`error: spec.rules[0].to[0].operation.hosts[1]: "a.example.com:8080" contains a port; write only the host name (it matches on every port), and restrict ports with ports`,
				`error: spec.rules[0].to[0].operation.hosts[2]: "10.0.0.1" is an IP address; hosts are matched by name (HTTP Host or TLS SNI): name the host`,
				`error: spec.rules[0].to[0].operation.hosts[3]: "a.*.com" has a "*" that is not at the start; hosts allow only a leading "*" for a suffix match, as in "*.example.com" or "*example.com"`,
				`error: spec.rules[0].to[0].operation.hosts[4]: "api.*" has a "*" that is not at the start; hosts allow only a leading "*" for a suffix match, as in "*.example.com" or "*example.com"`,
				`error: spec.rules[0].to[0].operation.hosts[5]: "a..b" has an empty label; remove the extra "."`,
				`error: spec.rules[0].to[0].operation.notHosts[0]: "*x_y.com" is not a host name suffix: contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`,
			},
		},
		"when keys": {
			spec: rule("DENY", "when:\n    - {key: request.auth.principal, values: [x]}\n    - {key: remote.ip, values: [10.0.0.1]}\n    - {key: destination.ip, values: [10.0.0.1]}\n    - {key: source.IP, values: [10.0.0.1]}\n    - {key: 'request.headers[]', values: [x]}\n    - {key: source.namespace}\n    - {values: [x]}\n    - {key: experimental.envoy.filters.x, values: [x]}"),
			want: []string{
				`error: spec.rules[0].when[0].key: "request.auth.principal" needs request authentication (JWT), which egressd does not check; use one of connection.sni, source.ip, source.namespace, source.principal, destination.port, request.headers[<name>]`,
				`error: spec.rules[0].when[1].key: "remote.ip" is not supported: egressd does not trust X-Forwarded-For or PROXY protocol addresses; use source.ip`,
				`error: spec.rules[0].when[2].key: "destination.ip" is not supported by egressd; match the destination by host (rule.to.operation.hosts) or by connection.sni`,
				`error: spec.rules[0].when[3].key: "source.IP" is not a key egressd supports; did you mean "source.ip"?`,
				`error: spec.rules[0].when[4].key: request.headers[]: "" is not a valid header name; use letters, digits and "-", e.g. request.headers[x-team]`,
				`error: spec.rules[0].when[5]: condition on source.namespace has neither values nor notValues; set one (Istio requires it), or remove the condition`,
				`error: spec.rules[0].when[6].key: missing; use one of connection.sni, source.ip, source.namespace, source.principal, destination.port, request.headers[<name>]`,
				`error: spec.rules[0].when[7].key: "experimental.envoy.filters.x" is not a key egressd supports; use one of connection.sni, source.ip, source.namespace, source.principal, destination.port, request.headers[<name>]`,
			},
		},
		"when values": {
			spec: rule("DENY", "when:\n    - {key: connection.sni, values: ['a.*']}\n    - {key: source.ip, values: [x]}\n    - {key: source.principal, notValues: ['a*b']}\n    - {key: destination.port, values: ['99999']}\n    - {key: 'request.headers[x-a]', values: ['**']}"),
			want: []string{
				`error: spec.rules[0].when[0].values[0]: "a.*" has a "*" that is not at the start; hosts allow only a leading "*" for a suffix match, as in "*.example.com" or "*example.com"`,
				`error: spec.rules[0].when[1].values[0]: "x" is not an IP address or CIDR range, e.g. "192.0.2.10" or "192.0.2.0/24"`,
				`error: spec.rules[0].when[2].notValues[0]: "a*b" has a "*" in the middle; a "*" may only stand for a prefix ("*x") or a suffix ("x*")`,
				`error: spec.rules[0].when[3].values[0]: 99999 is out of range; use 1-65535`,
				`error: spec.rules[0].when[4].values[0]: "**" has 2 "*"; use at most one, as a prefix ("*x") or a suffix ("x*")`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, problems := validatePolicyYAML(t, tt.spec)
			if p != nil {
				t.Errorf("got a policy, want nil")
			}
			if d := cmp.Diff(withPrefix(apPrefix, tt.want), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateAuthorizationPolicyValid(t *testing.T) {
	ref := Ref{Kind: KindAuthorizationPolicy, Namespace: "ns", Name: "ap", File: "ap.yaml", Line: 1}
	tests := map[string]struct {
		spec     string
		want     *AuthorizationPolicy
		warnings []string // "field: message", without apPrefix
	}{
		"empty spec allows nothing": {
			spec: "  {}\n",
			want: &AuthorizationPolicy{Ref: ref, Action: AuthzAllow},
		},
		"rule without fields matches everything": {
			spec: rule("ALLOW", "{}"),
			want: &AuthorizationPolicy{Ref: ref, Action: AuthzAllow, Rules: []AuthzRule{{}}},
		},
		"deny without rules warns": {
			spec:     "  action: DENY\n  selector: {matchLabels: {app: egress}}\n",
			want:     &AuthorizationPolicy{Ref: ref, Action: AuthzDeny, Selector: map[string]string{"app": "egress"}},
			warnings: []string{`spec.rules: none: a DENY policy without rules matches nothing, so it has no effect; to deny every request, write rules: [{}]`},
		},
		"every field, normalised": {
			spec: rule("AUDIT", `from:
    - source:
        principals: [cluster.local/ns/ci/sa/builder, "*/sa/admin", "td/*", "*"]
        notPrincipals: [cluster.local/ns/ci/sa/intruder]
        namespaces: [ci, "team-*", "*-prod", "*"]
        notNamespaces: [kube-system]
        ipBlocks: [10.1.2.3/8, 192.0.2.7, "2001:DB8::1"]
        notIpBlocks: [10.9.0.0/16]
    to:
    - operation:
        hosts: [API.Example.com., "*.example.org", "*example.net", "*.Bücher.de"]
        notHosts: [admin.example.org]
        ports: ["443", "08080"]
        notPorts: ["8443"]
        methods: [GET, "*", PURGE]
        notMethods: [DELETE]
        paths: [/api/v1, /static/*, "*.png", "*"]
        notPaths: [/admin]
    when:
    - key: connection.sni
      values: ["*.example.org"]
    - key: request.headers[X-Team]
      values: [blue, "team-*"]`),
			want: &AuthorizationPolicy{Ref: ref, Action: AuthzAudit, Rules: []AuthzRule{{
				From: []AuthzSource{{
					Principals:    []string{"cluster.local/ns/ci/sa/builder", "*/sa/admin", "td/*", "*"},
					NotPrincipals: []string{"cluster.local/ns/ci/sa/intruder"},
					Namespaces:    []string{"ci", "team-*", "*-prod", "*"},
					NotNamespaces: []string{"kube-system"},
					IPBlocks:      []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::1"},
					NotIPBlocks:   []string{"10.9.0.0/16"},
				}},
				To: []AuthzOperation{{
					Hosts:      []string{"api.example.com", "*.example.org", "*example.net", "*.xn--bcher-kva.de"},
					NotHosts:   []string{"admin.example.org"},
					Ports:      []string{"443", "8080"},
					NotPorts:   []string{"8443"},
					Methods:    []string{"GET", "*", "PURGE"},
					NotMethods: []string{"DELETE"},
					Paths:      []string{"/api/v1", "/static/*", "*.png", "*"},
					NotPaths:   []string{"/admin"},
				}},
				When: []AuthzCondition{
					{Key: "connection.sni", Values: []string{"*.example.org"}},
					{Key: "request.headers[x-team]", Values: []string{"blue", "team-*"}},
				},
			}}},
			warnings: []string{
				`spec.rules[0].from[0].source.ipBlocks[0]: "10.1.2.3/8" has bits set after the prefix length; it means 10.0.0.0/8: write that`,
				`spec.rules[0].to[0].operation.methods[2]: "PURGE" is not a standard HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH); check the spelling`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, problems := validatePolicyYAML(t, tt.spec)
			if d := cmp.Diff(tt.want, p); d != "" {
				t.Errorf("policy differs (-want +got):\n%s", d)
			}
			var want []string
			for _, w := range tt.warnings {
				want = append(want, "warning: "+w)
			}
			if d := cmp.Diff(withPrefix(apPrefix, want), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateAuthorizationPolicyWithoutDecode(t *testing.T) {
	p, problems := ValidateAuthorizationPolicy(Object{Ref: Ref{Kind: KindAuthorizationPolicy, Namespace: "ns", Name: "x"}})
	if p != nil || len(problems) != 1 || problems[0].Field != "spec" {
		t.Errorf("got %v, %v; want nil and one spec problem", p, problems)
	}
}

func TestAuthorizationPolicySelects(t *testing.T) {
	gateway := map[string]string{"app": "egressd", "istio": "egressgateway"}
	tests := map[string]struct {
		selector map[string]string
		want     bool
	}{
		"empty":        {nil, true},
		"subset":       {map[string]string{"app": "egressd"}, true},
		"all":          {map[string]string{"app": "egressd", "istio": "egressgateway"}, true},
		"other value":  {map[string]string{"app": "web"}, false},
		"missing key":  {map[string]string{"tier": "edge"}, false},
		"one mismatch": {map[string]string{"app": "egressd", "tier": "edge"}, false},
	}
	for name, tt := range tests {
		p := &AuthorizationPolicy{Selector: tt.selector}
		if got := p.Selects(gateway); got != tt.want {
			t.Errorf("%s: Selects = %v, want %v", name, got, tt.want)
		}
		pa := &PeerAuthentication{Selector: tt.selector}
		if got := pa.Selects(gateway); got != tt.want {
			t.Errorf("%s: PeerAuthentication.Selects = %v, want %v", name, got, tt.want)
		}
	}
}

func TestAuthzHeaderKey(t *testing.T) {
	for key, want := range map[string]string{
		"request.headers[x-team]": "x-team",
		"request.headers[]":       "",
	} {
		if got, ok := AuthzHeaderKey(key); !ok || got != want {
			t.Errorf("AuthzHeaderKey(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"request.headers", "request.headers[x", "source.ip"} {
		if _, ok := AuthzHeaderKey(key); ok {
			t.Errorf("AuthzHeaderKey(%q) ok, want not", key)
		}
	}
}

// TestInvalidPolicyFailsClosed: ParseConfig keeps invalid ALLOW, DENY and
// CUSTOM policies in a form that closes, whether validation or decoding
// failed; AUDIT policies and policies with invalid selectors are dropped.
func TestInvalidPolicyFailsClosed(t *testing.T) {
	denyAll := []AuthzRule{{}}
	tests := map[string]struct {
		spec       string
		apiVersion string
		want       *AuthorizationPolicy // Ref and Invalid are not compared
	}{
		"allow with a bad value": {
			spec: rule("ALLOW", "from: [{source: {principals: ['a*b*']}}]"),
			want: &AuthorizationPolicy{Action: AuthzAllow},
		},
		"deny with a bad key": {
			spec: "  selector: {matchLabels: {app: egress}}\n" + rule("DENY", "when: [{key: 'request.auth.claims[iss]', values: [x]}]"),
			want: &AuthorizationPolicy{Action: AuthzDeny, Selector: map[string]string{"app": "egress"}, Rules: denyAll},
		},
		"custom with valid rules denies what they match": {
			spec: "  provider: {name: opa}\n" + rule("CUSTOM", "to: [{operation: {hosts: [api.example.com]}}]"),
			want: &AuthorizationPolicy{Action: AuthzDeny, Rules: []AuthzRule{{To: []AuthzOperation{{Hosts: []string{"api.example.com"}}}}}},
		},
		"custom with invalid rules denies everything": {
			spec: rule("CUSTOM", "to: [{operation: {ports: [x]}}]"),
			want: &AuthorizationPolicy{Action: AuthzDeny, Rules: denyAll},
		},
		"audit is dropped": {
			spec: rule("AUDIT", "to: [{operation: {ports: [x]}}]"),
		},
		"invalid selector is dropped": {
			spec: "  selector: {matchLabels: {app: 'a b'}}\n" + rule("DENY", "{}"),
		},
		"undecodable deny": {
			spec: "  action: Deny\n  selector: {matchLabels: {app: egress}}\n  rules: [{to: [{operation: {port: ['1']}}]}]\n",
			want: &AuthorizationPolicy{Action: AuthzDeny, Selector: map[string]string{"app": "egress"}, Rules: denyAll},
		},
		"undecodable deny with unreadable selector selects all": {
			spec: "  action: DENY\n  selector: {labels: {app: egress}}\n",
			want: &AuthorizationPolicy{Action: AuthzDeny, Rules: denyAll},
		},
		"undecodable without action allows nothing": {
			spec: "  rules: [{from: [{source: {principals: cluster.local/ns/a/sa/b}}]}]\n",
			want: &AuthorizationPolicy{Action: AuthzAllow},
		},
		"unreadable action denies": {
			spec: "  action: [ALLOW]\n",
			want: &AuthorizationPolicy{Action: AuthzDeny, Rules: denyAll},
		},
		"undecodable audit is dropped": {
			spec: "  action: audit\n",
		},
		"another project's kind is only reported": {
			apiVersion: "policy.linkerd.io/v1alpha1",
			spec:       "  targetRef: {kind: Server, name: web}\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := apYAML(tt.spec)
			if tt.apiVersion != "" {
				in = strings.Replace(in, "security.istio.io/v1", tt.apiVersion, 1)
			}
			c, problems := ParseConfig("ap.yaml", []byte(in))
			if !hasError(problems) {
				t.Fatalf("no error")
			}
			var got *AuthorizationPolicy
			switch len(c.AuthorizationPolicies) {
			case 0:
			case 1:
				got = c.AuthorizationPolicies[0]
				if got.Invalid == "" {
					t.Errorf("Invalid is empty")
				}
				if got.Ref.Name != "ap" {
					t.Errorf("Ref = %v", got.Ref)
				}
				got = &AuthorizationPolicy{Action: got.Action, Selector: got.Selector, Rules: got.Rules}
			default:
				t.Fatalf("%d policies", len(c.AuthorizationPolicies))
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("policy differs (-want +got):\n%s\nproblems:\n%s", d, problemLines(problems))
			}
		})
	}
}

func TestValidatePeerAuthentication(t *testing.T) {
	ref := Ref{Kind: KindPeerAuthentication, Namespace: "ns", Name: "pa", File: "pa.yaml", Line: 1}
	paYAML := func(spec string) string {
		return "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: pa\n  namespace: ns\nspec:\n" + spec
	}
	tests := map[string]struct {
		spec     string
		want     *PeerAuthentication
		problems []string // whole lines after "pa.yaml:1: PeerAuthentication ns/pa: "
	}{
		"empty": {
			spec: "  {}\n",
			want: &PeerAuthentication{Ref: ref, Mode: MTLSUnset},
		},
		"strict": {
			spec: "  mtls: {mode: STRICT}\n",
			want: &PeerAuthentication{Ref: ref, Mode: MTLSStrict},
		},
		"port level": {
			spec: "  selector: {matchLabels: {app: db}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    5432: {mode: DISABLE}\n    8080: {}\n",
			want: &PeerAuthentication{Ref: ref, Selector: map[string]string{"app": "db"}, Mode: MTLSPermissive,
				PortModes: map[uint32]MTLSMode{5432: MTLSDisable, 8080: MTLSUnset}},
		},
		"port level without selector": {
			spec:     "  portLevelMtls: {5432: {mode: DISABLE}}\n",
			problems: []string{`error: spec.portLevelMtls: needs spec.selector.matchLabels: Istio accepts port-level modes only in a policy for selected workloads, not in a namespace- or mesh-wide one; add a selector, or remove portLevelMtls`},
		},
		"port out of range": {
			spec:     "  selector: {matchLabels: {app: db}}\n  portLevelMtls: {0: {mode: DISABLE}, 65536: {mode: STRICT}}\n",
			problems: []string{`error: spec.portLevelMtls[0]: port 0 is out of range; use 1-65535`, `error: spec.portLevelMtls[65536]: port 65536 is out of range; use 1-65535`},
		},
		"bad selector": {
			spec:     "  selector: {matchLabels: {'-app': db}}\n",
			problems: []string{`error: spec.selector.matchLabels[-app]: "-app" is not a valid label key: use an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			objects, problems := Decode("pa.yaml", []byte(paYAML(tt.spec)))
			if len(problems) != 0 || len(objects) != 1 {
				t.Fatalf("Decode: %d objects, problems:\n%s", len(objects), problemLines(problems))
			}
			p, problems := ValidatePeerAuthentication(objects[0])
			if d := cmp.Diff(tt.want, p); d != "" {
				t.Errorf("policy differs (-want +got):\n%s", d)
			}
			if d := cmp.Diff(withPrefix("pa.yaml:1: PeerAuthentication ns/pa: ", tt.problems), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
	if p, ps := ValidatePeerAuthentication(Object{Ref: ref}); p != nil || len(ps) != 1 {
		t.Errorf("without spec: got %v, %v", p, ps)
	}
	pa := &PeerAuthentication{Mode: MTLSStrict, PortModes: map[uint32]MTLSMode{8080: MTLSDisable}}
	if pa.ModeFor(8080) != MTLSDisable || pa.ModeFor(443) != MTLSStrict {
		t.Errorf("ModeFor: got %s and %s", pa.ModeFor(8080), pa.ModeFor(443))
	}
}

// TestCompileConfigPolicies: policies are sorted by namespace/name, one per
// namespace/name, and part of the version.
func TestCompileConfigPolicies(t *testing.T) {
	ap := func(ns, name, file string, action AuthzAction) *AuthorizationPolicy {
		return &AuthorizationPolicy{Ref: Ref{Kind: KindAuthorizationPolicy, Namespace: ns, Name: name, File: file, Line: 1}, Action: action}
	}
	pa := func(ns, name, file string, mode MTLSMode) *PeerAuthentication {
		return &PeerAuthentication{Ref: Ref{Kind: KindPeerAuthentication, Namespace: ns, Name: name, File: file, Line: 1}, Mode: mode}
	}
	c := Config{
		AuthorizationPolicies: []*AuthorizationPolicy{
			ap("b", "x", "2.yaml", AuthzDeny), ap("a", "z", "1.yaml", AuthzAllow), ap("b", "x", "1.yaml", AuthzAudit), ap("a", "y", "1.yaml", AuthzAllow),
		},
		PeerAuthentications: []*PeerAuthentication{pa("b", "p", "1.yaml", MTLSStrict), pa("a", "p", "1.yaml", MTLSDisable)},
	}
	a := CompileConfig(c, nil)
	var got []string
	for _, p := range a.AuthorizationPolicies() {
		got = append(got, p.Ref.String()+" "+p.Ref.File+" "+string(p.Action))
	}
	for _, p := range a.PeerAuthentications() {
		got = append(got, p.Ref.String()+" "+string(p.Mode))
	}
	want := []string{"a/y 1.yaml ALLOW", "a/z 1.yaml ALLOW", "b/x 1.yaml AUDIT", "a/p DISABLE", "b/p STRICT"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("policies differ (-want +got):\n%s", d)
	}
	if d := cmp.Diff(
		`error: 2.yaml:1: AuthorizationPolicy b/x: AuthorizationPolicy b/x is already defined at 1.yaml:1; a namespace holds one AuthorizationPolicy of a name: rename one (this one is ignored)`+"\n",
		problemLines(a.Problems())); d != "" {
		t.Errorf("problems differ (-want +got):\n%s", d)
	}

	// The version covers the policies, and does not depend on input order.
	base := CompileConfig(Config{}, nil).Version()
	if a.Version() == base {
		t.Errorf("policies do not change the version")
	}
	reversed := Config{
		AuthorizationPolicies: []*AuthorizationPolicy{c.AuthorizationPolicies[3], c.AuthorizationPolicies[2], c.AuthorizationPolicies[1], c.AuthorizationPolicies[0]},
		PeerAuthentications:   []*PeerAuthentication{c.PeerAuthentications[1], c.PeerAuthentications[0]},
	}
	if v := CompileConfig(reversed, nil).Version(); v != a.Version() {
		t.Errorf("version depends on order: %s vs %s", v, a.Version())
	}
	changed := Config{AuthorizationPolicies: append([]*AuthorizationPolicy(nil), c.AuthorizationPolicies...), PeerAuthentications: c.PeerAuthentications}
	changed.AuthorizationPolicies[1] = ap("a", "z", "1.yaml", AuthzDeny)
	if v := CompileConfig(changed, nil).Version(); v == a.Version() {
		t.Errorf("a changed action keeps the version")
	}
	onlyPeers := CompileConfig(Config{PeerAuthentications: c.PeerAuthentications}, nil).Version()
	if onlyPeers == base {
		t.Errorf("peer authentications do not change the version")
	}
}
