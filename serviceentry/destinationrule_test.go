package serviceentry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// drYAML wraps spec (YAML lines as they sit under "spec:", indented by two
// spaces) into a DestinationRule ns/dr that starts on line 1 of dr.yaml.
func drYAML(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr\n  namespace: ns\nspec:\n" + spec
}

// validateRuleYAML decodes one DestinationRule and validates it. Decoding
// must succeed.
func validateRuleYAML(t *testing.T, spec string) (*Rule, []Problem) {
	t.Helper()
	objects, problems := Decode("dr.yaml", []byte(drYAML(spec)))
	if len(problems) != 0 || len(objects) != 1 {
		t.Fatalf("Decode: %d objects, problems:\n%s", len(objects), problemLines(problems))
	}
	return ValidateRule(objects[0])
}

// drPrefix is how every problem of a drYAML resource starts.
const drPrefix = "dr.yaml:1: DestinationRule ns/dr: "

// withDRPrefix turns "severity: rest" lines into whole problem lines.
func withDRPrefix(lines []string) string {
	var out []string
	for _, w := range lines {
		sev, rest, _ := strings.Cut(w, ": ")
		out = append(out, sev+": "+drPrefix+rest)
	}
	return strings.Join(out, "\n")
}

// tlsSpec is a spec with host api.example.com and the given tls block
// (YAML flow mapping content).
func tlsSpec(tls string) string {
	return "  host: api.example.com\n  trafficPolicy:\n    tls: {" + tls + "}\n"
}

func TestValidateRuleInvalid(t *testing.T) {
	tests := map[string]struct {
		spec string
		want []string // "severity: field: message", without drPrefix
	}{
		"no host": {
			spec: "  trafficPolicy: {tls: {mode: SIMPLE}}\n",
			want: []string{`error: spec.host: missing; name the host the rule applies to as a ServiceEntry lists it in spec.hosts, e.g. api.example.com`},
		},
		"bare wildcard host": {
			spec: "  host: '*'\n",
			want: []string{`error: spec.host: "*" matches every host; write one DestinationRule per host, or use a wildcard such as "*.example.com"`},
		},
		"misplaced wildcard": {
			spec: "  host: 'api*.example.com'\n",
			want: []string{`error: spec.host: "api*.example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		},
		"insecure skip verify with verification settings (Istio refuses it)": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem, subjectAltNames: [api.example.com]}\n",
			want: []string{`error: spec.trafficPolicy.tls.insecureSkipVerify: true skips verifying the server's certificate, and Istio refuses it together with caCertificates and subjectAltNames: remove them, or insecureSkipVerify to verify the server`},
		},
		"insecure skip verify with a credential in SIMPLE": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true, credentialName: ca}\n",
			want: []string{`error: spec.trafficPolicy.tls.insecureSkipVerify: true skips verifying the server's certificate, and Istio refuses it together with credentialName: remove it, or insecureSkipVerify to verify the server`},
		},
		"ca crl with a credential": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: ca, caCrl: /crl.pem}\n",
			want: []string{`error: spec.trafficPolicy.tls.caCrl: cannot be set with credentialName (as Istio requires); the Secret holds the CA: remove caCrl`},
		},
		"ip address host": {
			spec: "  host: 192.0.2.10\n",
			want: []string{`error: spec.host: "192.0.2.10" is an IP address; name the host as a ServiceEntry lists it in spec.hosts`},
		},
		"host with port": {
			spec: "  host: api.example.com:443\n",
			want: []string{`error: spec.host: "api.example.com:443" contains a port; write only the host name, and set the TLS of one port in spec.trafficPolicy.portLevelSettings`},
		},
		"underscore host": {
			spec: "  host: my_bucket.example.com\n",
			want: []string{`error: spec.host: "my_bucket.example.com" contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`},
		},
		"export to": {
			spec: "  host: api.example.com\n  exportTo: ['~', Team_A]\n",
			want: []string{
				`error: spec.exportTo[1]: "Team_A" is not a namespace; use "." (this namespace), "*" (all namespaces), "~" (none) or a namespace name`,
				`error: spec.exportTo: "~" (export to no namespace) cannot be combined with other values; use it alone`,
			},
		},
		"mutual without a key pair": {
			spec: tlsSpec("mode: MUTUAL, caCertificates: /etc/certs/ca.pem"),
			want: []string{`error: spec.trafficPolicy.tls: mode MUTUAL needs a client key pair: set credentialName (a Secret with tls.crt and tls.key), or clientCertificate and privateKey (absolute file paths)`},
		},
		"certificate without key": {
			spec: tlsSpec("mode: MUTUAL, clientCertificate: /etc/certs/client.pem"),
			want: []string{`error: spec.trafficPolicy.tls.privateKey: missing: clientCertificate is set, and a client certificate needs its private key; set privateKey too, or remove clientCertificate`},
		},
		"key without certificate, any mode": {
			spec: tlsSpec("mode: SIMPLE, privateKey: /etc/certs/client.key"),
			want: []string{`error: spec.trafficPolicy.tls.clientCertificate: missing: privateKey is set, and a private key needs its certificate; set clientCertificate too, or remove privateKey`},
		},
		"credential name and files": {
			spec: tlsSpec("mode: MUTUAL, credentialName: partner, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem"),
			want: []string{`error: spec.trafficPolicy.tls.credentialName: use credentialName or file paths, not both (as Istio requires): remove clientCertificate, privateKey and caCertificates, or credentialName`},
		},
		"credential name and a CA file": {
			spec: tlsSpec("mode: SIMPLE, credentialName: partner, caCertificates: /ca.pem"),
			want: []string{`error: spec.trafficPolicy.tls.credentialName: use credentialName or file paths, not both (as Istio requires): remove caCertificates, or credentialName`},
		},
		"invalid credential name": {
			spec: tlsSpec("mode: MUTUAL, credentialName: Partner_Cert"),
			want: []string{`error: spec.trafficPolicy.tls.credentialName: "Partner_Cert" is not a valid Secret name: use at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`},
		},
		"relative paths": {
			spec: tlsSpec("mode: MUTUAL, clientCertificate: certs/client.pem, privateKey: ./client.key, caCertificates: ca.pem"),
			want: []string{
				`error: spec.trafficPolicy.tls.clientCertificate: "certs/client.pem" is not an absolute path; write the file's full path, starting with "/" (a relative path would depend on the folder egressd runs in)`,
				`error: spec.trafficPolicy.tls.privateKey: "./client.key" is not an absolute path; write the file's full path, starting with "/" (a relative path would depend on the folder egressd runs in)`,
				`error: spec.trafficPolicy.tls.caCertificates: "ca.pem" is not an absolute path; write the file's full path, starting with "/" (a relative path would depend on the folder egressd runs in)`,
			},
		},
		"wildcard sni": {
			spec: tlsSpec("mode: SIMPLE, sni: '*.example.com'"),
			want: []string{`error: spec.trafficPolicy.tls.sni: "*.example.com" is a wildcard; SNI names one server: write the name the server expects, e.g. "api.example.com"`},
		},
		"ip address sni": {
			spec: tlsSpec("mode: SIMPLE, sni: 192.0.2.1"),
			want: []string{`error: spec.trafficPolicy.tls.sni: "192.0.2.1" is an IP address; SNI carries host names only (RFC 6066): name the server, or remove sni to send the host's name`},
		},
		"sni with port": {
			spec: tlsSpec("mode: SIMPLE, sni: 'api.example.com:443'"),
			want: []string{`error: spec.trafficPolicy.tls.sni: "api.example.com:443" contains a port; write only the server's host name`},
		},
		"invalid sni": {
			spec: tlsSpec("mode: SIMPLE, sni: 'api..example.com'"),
			want: []string{`error: spec.trafficPolicy.tls.sni: "api..example.com" has an empty label; remove the extra "."`},
		},
		"empty subject alt name": {
			spec: tlsSpec("mode: SIMPLE, subjectAltNames: [api.example.com, '']"),
			want: []string{`error: spec.trafficPolicy.tls.subjectAltNames[1]: empty name; remove it`},
		},
		"port level: no port": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - tls: {mode: SIMPLE}\n",
			want: []string{`error: spec.trafficPolicy.portLevelSettings[0].port: missing; set port: {number: N} to the ServiceEntry port these settings are for`},
		},
		"port level: no number": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {}\n      tls: {mode: SIMPLE}\n",
			want: []string{`error: spec.trafficPolicy.portLevelSettings[0].port.number: missing; set the ServiceEntry port these settings are for (1-65535)`},
		},
		"port level: out of range": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 65536}\n      tls: {mode: SIMPLE}\n",
			want: []string{`error: spec.trafficPolicy.portLevelSettings[0].port.number: 65536 is out of range; use 1-65535`},
		},
		"port level: duplicate": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n    - port: {number: 80}\n      tls: {mode: DISABLE}\n",
			want: []string{`error: spec.trafficPolicy.portLevelSettings[1].port.number: port 80 is already listed as spec.trafficPolicy.portLevelSettings[0]; merge the two`},
		},
		"port level: bad tls": {
			spec: "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 5432}\n      tls: {mode: MUTUAL}\n",
			want: []string{`error: spec.trafficPolicy.portLevelSettings[0].tls: mode MUTUAL needs a client key pair: set credentialName (a Secret with tls.crt and tls.key), or clientCertificate and privateKey (absolute file paths)`},
		},
		"every problem is reported, warnings too": {
			spec: "  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: RANDOM}\n    tls: {mode: ISTIO_MUTUAL, clientCertificate: c.pem}\n",
			want: []string{
				`warning: spec.host: "reviews" is a short name: as Istio does, it means "reviews.ns.svc.cluster.local", a Service in the rule's namespace, not an external host; the rule acts only if a ServiceEntry lists that name (write the external host's full name, e.g. "reviews.example.com", if that was meant)`,
				`warning: spec.trafficPolicy.tls.mode: ISTIO_MUTUAL applies to hops inside the mesh, never to TLS origination to external hosts: egressd originates no TLS with these settings; use SIMPLE or MUTUAL to originate TLS`,
				`error: spec.trafficPolicy.tls.clientCertificate: "c.pem" is not an absolute path; write the file's full path, starting with "/" (a relative path would depend on the folder egressd runs in)`,
				`error: spec.trafficPolicy.tls.privateKey: missing: clientCertificate is set, and a client certificate needs its private key; set privateKey too, or remove clientCertificate`,
				`warning: spec: ignored: egressd's gateway does not apply spec.trafficPolicy.loadBalancer yet (only host, exportTo and the TLS settings take effect)`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r, problems := validateRuleYAML(t, tt.spec)
			if r != nil {
				t.Errorf("got a Rule, want nil")
			}
			if d := cmp.Diff(withDRPrefix(tt.want), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateRuleValid(t *testing.T) {
	ref := Ref{Kind: "DestinationRule", Namespace: "ns", Name: "dr", File: "dr.yaml", Line: 1}
	tests := map[string]struct {
		spec     string
		want     *Rule
		warnings []string // "field: message", without drPrefix
	}{
		"host only": {
			spec: "  host: API.Example.com.\n",
			want: &Rule{Ref: ref, Host: "api.example.com"},
		},
		"wildcard and internationalised host": {
			spec: "  host: '*.Bücher.de'\n  exportTo: ['.', team-a]\n",
			want: &Rule{Ref: ref, Host: "*.xn--bcher-kva.de", ExportTo: []string{".", "team-a"}},
		},
		"simple with every verification field": {
			spec: tlsSpec("mode: SIMPLE, caCertificates: /etc/certs/ca.pem, sni: API.Example.com, subjectAltNames: ['spiffe://example.com/api', api.example.com]"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{
				Mode: TLSSimple, CACertificates: "/etc/certs/ca.pem", SNI: "api.example.com",
				SubjectAltNames: []string{"spiffe://example.com/api", "api.example.com"},
			}},
		},
		"mutual with files": {
			spec: tlsSpec("mode: MUTUAL, clientCertificate: /etc/certs/client.pem, privateKey: /etc/certs/client.key"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{
				Mode: TLSMutual, ClientCertificate: "/etc/certs/client.pem", PrivateKey: "/etc/certs/client.key",
			}},
		},
		"mutual with a credential": {
			spec: tlsSpec("mode: MUTUAL, credentialName: partner.cert"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSMutual, CredentialName: "partner.cert"}},
		},
		"port level settings, with and without tls": {
			spec: `  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: DISABLE}
    - port: {number: 8080}
      tls: {mode: MUTUAL, credentialName: partner}
    - port: {number: 9090}
`,
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSSimple}, PortTLS: map[uint32]*TLSSettings{
				80:   {Mode: TLSDisable},
				8080: {Mode: TLSMutual, CredentialName: "partner"},
			}},
		},
		"simple with a client key pair": {
			spec: tlsSpec("mode: SIMPLE, clientCertificate: /c.pem, privateKey: /k.pem"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSSimple, ClientCertificate: "/c.pem", PrivateKey: "/k.pem"}},
			warnings: []string{
				`spec.trafficPolicy.tls.clientCertificate: mode SIMPLE sends no client certificate, so clientCertificate and privateKey are ignored; use mode MUTUAL to present them`,
			},
		},
		"istio mutual": {
			spec: tlsSpec("mode: ISTIO_MUTUAL"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSIstioMutual}},
			warnings: []string{
				`spec.trafficPolicy.tls.mode: ISTIO_MUTUAL applies to hops inside the mesh, never to TLS origination to external hosts: egressd originates no TLS with these settings; use SIMPLE or MUTUAL to originate TLS`,
			},
		},
		"settings without mode are DISABLE": {
			spec: tlsSpec("sni: api.example.com, caCertificates: /ca.pem"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSDisable, SNI: "api.example.com", CACertificates: "/ca.pem"}},
			warnings: []string{
				`spec.trafficPolicy.tls.mode: DISABLE (the default when mode is not set) sends no TLS, so caCertificates and sni are ignored; set mode: SIMPLE or MUTUAL to originate TLS`,
			},
		},
		"DISABLE: one warning for every setting": {
			spec: tlsSpec("mode: DISABLE, insecureSkipVerify: true, caCertificates: /ca.pem, caCrl: /ca.crl"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSDisable, InsecureSkipVerify: true, CACertificates: "/ca.pem"}},
			warnings: []string{
				`spec.trafficPolicy.tls.mode: DISABLE (the default when mode is not set) sends no TLS, so caCertificates, insecureSkipVerify and caCrl are ignored; set mode: SIMPLE or MUTUAL to originate TLS`,
			},
		},
		"short name, completed with the rule's namespace as Istio does": {
			spec: "  host: reviews\n",
			want: &Rule{Ref: ref, Host: "reviews.ns.svc.cluster.local"},
			warnings: []string{
				`spec.host: "reviews" is a short name: as Istio does, it means "reviews.ns.svc.cluster.local", a Service in the rule's namespace, not an external host; the rule acts only if a ServiceEntry lists that name (write the external host's full name, e.g. "reviews.example.com", if that was meant)`,
			},
		},
		"insecure skip verify with a credential in MUTUAL (the client's key pair)": {
			spec: tlsSpec("mode: MUTUAL, insecureSkipVerify: true, credentialName: client"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSMutual, InsecureSkipVerify: true, CredentialName: "client"}},
		},
		"insecure skip verify alone": {
			spec: tlsSpec("mode: SIMPLE, insecureSkipVerify: true"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSSimple, InsecureSkipVerify: true}},
		},
		"ca crl": {
			spec: tlsSpec("mode: SIMPLE, caCrl: /etc/certs/ca.crl"),
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSSimple}},
			warnings: []string{
				`spec.trafficPolicy.tls.caCrl: egressd does not check certificate revocation lists yet; caCrl is ignored`,
			},
		},
		"fields egressd ignores: one warning": {
			spec: `  host: api.example.com
  workloadSelector: {matchLabels: {app: client}}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 443}
      connectionPool: {http: {http2MaxRequests: 10}}
  subsets:
  - name: v1
    labels: {version: v1}
`,
			want: &Rule{Ref: ref, Host: "api.example.com", TLS: &TLSSettings{Mode: TLSSimple}},
			warnings: []string{
				`spec: ignored: egressd's gateway does not apply spec.subsets, spec.workloadSelector, spec.trafficPolicy.loadBalancer, spec.trafficPolicy.connectionPool, spec.trafficPolicy.outlierDetection and spec.trafficPolicy.portLevelSettings[0].connectionPool yet (only host, exportTo and the TLS settings take effect)`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r, problems := validateRuleYAML(t, tt.spec)
			if d := cmp.Diff(tt.want, r); d != "" {
				t.Errorf("rule differs (-want +got):\n%s", d)
			}
			var want []string
			for _, w := range tt.warnings {
				want = append(want, "warning: "+w)
			}
			if d := cmp.Diff(withDRPrefix(want), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

// TestValidateRuleWithoutDecode: ValidateRule takes objects built in code
// too, where enum values are not checked by decoding.
func TestValidateRuleWithoutDecode(t *testing.T) {
	ref := Ref{Kind: "DestinationRule", Namespace: "ns", Name: "dr"}
	tests := map[string]struct {
		dr   *networkingv1alpha3.DestinationRule
		want []string
	}{
		"no spec": {
			want: []string{`error: DestinationRule ns/dr: spec: missing; a DestinationRule needs at least spec.host`},
		},
		"bad enum and nil items": {
			dr: &networkingv1alpha3.DestinationRule{
				Host: "api.example.com",
				TrafficPolicy: &networkingv1alpha3.TrafficPolicy{
					Tls:               &networkingv1alpha3.ClientTLSSettings{Mode: 9},
					PortLevelSettings: []*networkingv1alpha3.TrafficPolicy_PortTrafficPolicy{nil},
				},
			},
			want: []string{
				`error: DestinationRule ns/dr: spec.trafficPolicy.tls.mode: unknown mode 9; use one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL`,
				`error: DestinationRule ns/dr: spec.trafficPolicy.portLevelSettings[0]: empty item; remove it`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r, problems := ValidateRule(Object{Ref: ref, DestinationRule: tt.dr})
			if r != nil {
				t.Errorf("got a Rule, want nil")
			}
			if d := cmp.Diff(strings.Join(tt.want, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseConfig: one file with both kinds; an invalid resource of either
// kind hides none of the valid ones; Parse keeps the entries and every
// problem.
func TestParseConfig(t *testing.T) {
	data := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner}
spec:
  hosts: [api.partner.example]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: partner}
spec:
  host: api.partner.example
  trafficPolicy: {tls: {mode: SIMPLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: broken}
spec:
  host: api.partner.example
  trafficPolicy: {tls: {mode: MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: broken}
spec:
  hosts: ['*']
  ports: [{number: 80, name: http, protocol: HTTP}]
`
	c, problems := ParseConfig("both.yaml", []byte(data))
	if len(c.Entries) != 1 || c.Entries[0].Ref.String() != "default/partner" {
		t.Errorf("entries: %v, want default/partner", c.Entries)
	}
	// The invalid MUTUAL rule is kept, marked, so its host fails closed
	// where no valid rule applies.
	if len(c.Rules) != 2 || c.Rules[0].Ref.String() != "default/partner" || c.Rules[0].Ref.Line != 9 || c.Rules[0].Invalid != "" ||
		c.Rules[1].Ref.String() != "default/broken" || !strings.Contains(c.Rules[1].Invalid, "mode MUTUAL needs a client key pair") {
		t.Errorf("rules: %+v %+v, want default/partner at line 9, then default/broken marked invalid", c.Rules[0], c.Rules[1])
	}
	want := []string{
		`error: both.yaml:16: DestinationRule default/broken: spec.trafficPolicy.tls: mode MUTUAL needs a client key pair: set credentialName (a Secret with tls.crt and tls.key), or clientCertificate and privateKey (absolute file paths)`,
		`error: both.yaml:23: ServiceEntry default/broken: spec.hosts[0]: "*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`,
	}
	if d := cmp.Diff(want, problemList(problems)); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	entries, parseProblems := Parse("both.yaml", []byte(data))
	if d := cmp.Diff(c.Entries, entries); d != "" {
		t.Errorf("Parse entries (-ParseConfig +Parse):\n%s", d)
	}
	if d := cmp.Diff(problems, parseProblems); d != "" {
		t.Errorf("Parse problems (-ParseConfig +Parse):\n%s", d)
	}
}
