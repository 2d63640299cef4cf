package serviceentry

import (
	"slices"
	"strings"
	"testing"
)

// TestProblemCodes: each kind of finding, from reading a file to compiling
// the allowlist, has its stable code.
func TestProblemCodes(t *testing.T) {
	se := func(name, host, port string) string {
		return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name + ", namespace: ns}\nspec:\n  hosts: [" + host + "]\n  ports: [" + port + "]\n  resolution: DNS\n---\n"
	}
	dr := func(name, host, mode string) string {
		return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name + ", namespace: ns}\nspec:\n  host: " + host + "\n  trafficPolicy: {tls: {mode: " + mode + "}}\n---\n"
	}
	for name, tc := range map[string]struct {
		doc  string
		want ProblemCode
	}{
		"not a resource":      {"[1, 2]\n", CodeNotAResource},
		"invalid metadata":    {"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: Bad_Name}\nspec: {hosts: [a.example.com]}\n", CodeInvalidMetadata},
		"too deep":            {strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n", CodeDocumentTooDeep},
		"duplicate name":      {strings.Repeat("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: ns}\nspec: {mtls: {mode: STRICT}}\n---\n", 2), CodeDuplicateName},
		"host conflict":       {se("a", "a.example.com", "{number: 80, name: http, protocol: HTTP}") + se("b", "a.example.com", "{number: 80, name: http, protocol: HTTP}"), CodeHostConflict},
		"port conflict":       {se("a", "a.example.com", "{number: 80, name: http, protocol: HTTP}") + se("b", "b.example.com", "{number: 80, name: tcp, protocol: TCP}"), CodePortConflict},
		"rule unused":         {dr("r", "nowhere.example.com", "SIMPLE"), CodeRuleUnused},
		"rule conflict":       {se("a", "a.example.com", "{number: 80, name: http, protocol: HTTP}") + dr("r1", "a.example.com", "SIMPLE") + dr("r2", "a.example.com", "SIMPLE"), CodeRuleConflict},
		"origination ignored": {se("a", "a.example.com", "{number: 443, name: tls, protocol: TLS}") + dr("r", "a.example.com", "SIMPLE"), CodeOriginationIgnored},
		"route ignored": {se("a", "a.example.com", "{number: 80, name: http, protocol: HTTP}") +
			"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: ns}\nspec:\n  hosts: [a.example.com]\n  http: [{route: [{destination: {host: b.example.com}}]}]\n", CodeRouteIgnored},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, problems := ParseConfig("case.yaml", []byte(tc.doc))
			a := CompileConfig(cfg, problems)
			var codes []ProblemCode
			for _, p := range a.Problems() {
				if p.Code == "" {
					t.Errorf("problem without a code: %v", p)
				}
				codes = append(codes, p.Code)
			}
			if !slices.Contains(codes, tc.want) {
				t.Errorf("codes %v, want %s among them:\n%s", codes, tc.want, problemLines(a.Problems()))
			}
		})
	}
	if p := ReadProblem("big.yaml", tooLargeError{tooLarge("big.yaml", MaxFileBytes+1)}); p.Code != CodeFileTooLarge {
		t.Errorf("too large: %v", p)
	}
	if _, err := ReadFile("/nonexistent/egressd.yaml"); ReadProblem("x", err).Code != CodeUnreadableFile {
		t.Errorf("unreadable: %v", err)
	}
}
