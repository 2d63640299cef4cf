package identity

import (
	"strings"
	"testing"
)

func TestPrincipalAndSPIFFEID(t *testing.T) {
	tests := map[string]struct {
		td, ns, sa     string
		principal, uri string
	}{
		"default trust domain": {DefaultTrustDomain, "default", "sleep", "cluster.local/ns/default/sa/sleep", "spiffe://cluster.local/ns/default/sa/sleep"},
		"gateway":              {"example.org", "egressd-system", "egress-gateway", "example.org/ns/egressd-system/sa/egress-gateway", "spiffe://example.org/ns/egressd-system/sa/egress-gateway"},
		"dotted sa":            {"td", "ns", "a.b", "td/ns/ns/sa/a.b", "spiffe://td/ns/ns/sa/a.b"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Principal(tc.td, tc.ns, tc.sa); got != tc.principal {
				t.Errorf("Principal = %q, want %q", got, tc.principal)
			}
			if got := SPIFFEID(tc.td, tc.ns, tc.sa); got != tc.uri {
				t.Errorf("SPIFFEID = %q, want %q", got, tc.uri)
			}
			td, ns, sa, err := ParseSPIFFEID(tc.uri)
			if err != nil || td != tc.td || ns != tc.ns || sa != tc.sa {
				t.Errorf("ParseSPIFFEID(%q) = %q, %q, %q, %v; want the parts back", tc.uri, td, ns, sa, err)
			}
		})
	}
}

func TestParseSPIFFEIDErrors(t *testing.T) {
	tests := map[string]struct {
		in, wantErr string
	}{
		"empty":                 {"", `must start with "spiffe://"`},
		"principal form":        {"cluster.local/ns/a/sa/b", `must start with "spiffe://"`},
		"other scheme":          {"https://cluster.local/ns/a/sa/b", "must start with"},
		"uppercase scheme":      {"SPIFFE://cluster.local/ns/a/sa/b", "must start with"},
		"no path":               {"spiffe://cluster.local", "want spiffe://<trust domain>/ns/<namespace>/sa/<service account>"},
		"trust domain only":     {"spiffe://cluster.local/", "want spiffe://"},
		"empty trust domain":    {"spiffe:///ns/a/sa/b", "trust domain \"\": empty"},
		"uppercase td":          {"spiffe://Cluster.Local/ns/a/sa/b", `uppercase letters; use "cluster.local"`},
		"port":                  {"spiffe://cluster.local:8080/ns/a/sa/b", "no port"},
		"userinfo":              {"spiffe://u@cluster.local/ns/a/sa/b", `character '@'`},
		"wrong keys":            {"spiffe://td/namespace/a/serviceaccount/b", "want spiffe://"},
		"swapped":               {"spiffe://td/sa/b/ns/a", "want spiffe://"},
		"extra segment":         {"spiffe://td/ns/a/sa/b/c", "want spiffe://"},
		"trailing slash":        {"spiffe://td/ns/a/sa/b/", "want spiffe://"},
		"empty namespace":       {"spiffe://td/ns//sa/b", "namespace: empty"},
		"empty sa":              {"spiffe://td/ns/a/sa/", "service account: empty"},
		"dot-dot":               {"spiffe://td/ns/../sa/b", `namespace: ".." is not allowed`},
		"query":                 {"spiffe://td/ns/a/sa/b?x=1", `service account: character '?'`},
		"fragment":              {"spiffe://td/ns/a/sa/b#x", `character '#'`},
		"percent-encoded":       {"spiffe://td/ns/a%2Fb/sa/b", `character '%'`},
		"too long":              {"spiffe://td/ns/a/sa/" + strings.Repeat("b", 2048), "longer than 2048 bytes"},
		"trust domain too long": {"spiffe://" + strings.Repeat("a", 256) + "/ns/a/sa/b", "longer than 255"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			td, ns, sa, err := ParseSPIFFEID(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseSPIFFEID(%q) = %q, %q, %q, %v; want an error with %q", tc.in, td, ns, sa, err, tc.wantErr)
			}
			if td != "" || ns != "" || sa != "" {
				t.Errorf("parts %q, %q, %q returned with an error", td, ns, sa)
			}
		})
	}
}

func TestValidateIdentity(t *testing.T) {
	tests := map[string]struct {
		td, ns, sa string
		wantErr    string // "" for valid
	}{
		"valid":                 {"cluster.local", "default", "sleep", ""},
		"digits and dashes":     {"td_1", "ns-1", "0-sa", ""},
		"sa with dots":          {"td", "ns", "a.b.c", ""},
		"63-char namespace":     {"td", strings.Repeat("n", 63), "sa", ""},
		"64-char namespace":     {"td", strings.Repeat("n", 64), "sa", "namespace \"" + strings.Repeat("n", 64) + "\": 64 characters; it must be a DNS-1123 label"},
		"long sa label":         {"td", "ns", strings.Repeat("s", 100), ""},
		"254-char sa":           {"td", "ns", strings.Repeat("s", 254), "254 characters"},
		"empty namespace":       {"td", "", "sa", `namespace "": empty; it must be a DNS-1123 label`},
		"uppercase namespace":   {"td", "Default", "sa", `namespace "Default": character 'D' (did you mean "default"?); it must be`},
		"namespace with dot":    {"td", "a.b", "sa", `character '.'`},
		"namespace dash end":    {"td", "ns-", "sa", "starts or ends with '-'"},
		"empty sa":              {"td", "ns", "", `service account "": empty; it must be a DNS-1123 subdomain`},
		"sa underscore":         {"td", "ns", "my_sa", `character '_'`},
		"sa double dot":         {"td", "ns", "a..b", "empty label"},
		"sa label dash":         {"td", "ns", "a.-b", "starts or ends with '-'"},
		"uppercase sa":          {"td", "ns", "Sleep", `(did you mean "sleep"?)`},
		"sa slash":              {"td", "ns", "a/b", `character '/'`},
		"bad trust domain":      {"Cluster.Local", "ns", "sa", `trust domain "Cluster.Local": uppercase letters; use "cluster.local"`},
		"empty trust domain":    {"", "ns", "sa", `trust domain "": empty`},
		"trust domain with url": {"spiffe://td", "ns", "sa", `a name, not a URI: use "td"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidateIdentity(tc.td, tc.ns, tc.sa)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v; want one with %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateDNSName(t *testing.T) {
	tests := map[string]struct {
		in, want, wantErr string
	}{
		"plain":          {"api.example.com", "api.example.com", ""},
		"canonicalized":  {"API.Example.com.", "api.example.com", ""},
		"single label":   {"localhost", "localhost", ""},
		"wildcard":       {"*.example.com", "*.example.com", ""},
		"inner wildcard": {"a.*.example.com", "", `only as a leading "*."`},
		"bare wildcard":  {"*", "", `only as a leading "*."`},
		"ip":             {"10.0.0.1", "", "an IP address"},
		"ipv6":           {"::1", "", "an IP address"},
		"empty":          {"", "", "empty"},
		"underscore":     {"a_b.example.com", "", `label "a_b": character '_'`},
		"idn":            {"bücher.example", "", "Punycode"},
		"punycode":       {"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		"long label":     {strings.Repeat("a", 64) + ".com", "", "64 characters"},
		"empty label":    {"a..com", "", "empty"},
		"space":          {"a b.com", "", "character ' '"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ValidateDNSName(tc.in)
			switch {
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Errorf("ValidateDNSName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("ValidateDNSName(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
		})
	}
}
