package serviceentry

import (
	"os"
	"strings"
	"testing"
)

// TestIstioValidationTable: cases written from Istio's documented
// validation rules for ServiceEntry and DestinationRule (the rules its
// pkg/config/validation tables check), each with Istio's verdict and
// egressd's. Where they differ, the README's "Differences from Istio" must
// say so: the case names the phrase it must contain.
func TestIstioValidationTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	se := func(spec string) string {
		return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se, namespace: ns}\nspec:\n" + spec
	}
	dr := func(spec string) string {
		return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: ns}\nspec:\n" + spec
	}
	const http2 = "  ports: [{number: 80, name: http-1, protocol: HTTP}, {number: 8080, name: http-2, protocol: HTTP}]\n"
	for _, tc := range []struct {
		name          string
		doc           string
		istio, egress bool   // valid?
		readme        string // where they differ: the README says so
	}{
		// ServiceEntry.
		{"DNS wildcard host with FQDN endpoints", se("  hosts: ['*.example.com']\n" + http2 + "  resolution: DNS\n  endpoints: [{address: lon.example.com, ports: {http-1: 8080}}, {address: in.example.com}]\n"), true, true, ""},
		{"DNS with an IP endpoint", se("  hosts: ['*.example.com']\n" + http2 + "  resolution: DNS\n  endpoints: [{address: 192.0.2.1}, {address: in.example.com}]\n"), true, true, ""},
		{"no hosts", se(http2 + "  resolution: DNS\n"), false, false, ""},
		{"bad host", se("  hosts: ['-']\n" + http2 + "  resolution: DNS\n"), false, false, ""},
		{"host *", se("  hosts: [example.com, '*']\n" + http2 + "  resolution: DNS\n"), false, false, ""},
		{"short host", se("  hosts: [foo, bar.com]\n" + http2 + "  resolution: DNS\n"), true, true, ""},
		{"endpoint port name not a port", se("  hosts: [example.com]\n" + http2 + "  resolution: DNS\n  endpoints: [{address: in.example.com, ports: {http-3: 9080}}]\n"), false, false, ""},
		{"DNS wildcard endpoint", se("  hosts: ['*.example.com']\n" + http2 + "  resolution: DNS\n  endpoints: [{address: '*.lon.example.com'}]\n"), false, false, ""},
		{"DNS wildcard host without endpoints", se("  hosts: ['*.example.com']\n" + http2 + "  resolution: DNS\n"), false, false, ""},
		{"DNS without endpoints", se("  hosts: [example.com]\n" + http2 + "  resolution: DNS\n"), true, true, ""},
		{"DNS unix endpoint", se("  hosts: ['*.example.com']\n" + http2 + "  resolution: DNS\n  endpoints: [{address: 'unix:///run/x.sock'}]\n"), false, false, ""},
		{"NONE", se("  hosts: [example.com]\n" + http2 + "  resolution: NONE\n"), true, true, ""},
		{"NONE with endpoints", se("  hosts: [example.com]\n" + http2 + "  resolution: NONE\n  endpoints: [{address: lon.example.com}]\n"), false, false, ""},
		{"NONE with CIDR addresses", se("  hosts: [example.com]\n  addresses: [198.18.0.0/16]\n" + http2 + "  resolution: NONE\n"), true, true, ""},
		{"STATIC with CIDR addresses and endpoints", se("  hosts: [example.com]\n  addresses: [198.18.0.0/16]\n" + http2 + "  resolution: STATIC\n  endpoints: [{address: 192.0.2.1, ports: {http-1: 8080}}, {address: 192.0.2.2}]\n"), true, true, ""},
		{"STATIC with an FQDN endpoint", se("  hosts: [example.com]\n" + http2 + "  resolution: STATIC\n  endpoints: [{address: in.example.com}, {address: 192.0.2.2}]\n"), false, false, ""},
		{"STATIC without endpoints", se("  hosts: [example.com]\n" + http2 + "  resolution: STATIC\n"), true, true, ""},
		{"STATIC endpoint on another network without address", se("  hosts: [example.com]\n" + http2 + "  resolution: STATIC\n  endpoints: [{network: remote}, {address: 192.0.2.2}]\n"), true, true, ""},
		{"two ports of one name", se("  hosts: [example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http, protocol: HTTP}]\n  resolution: NONE\n"), false, false, ""},
		{"two ports of one number", se("  hosts: [example.com]\n  ports: [{number: 80, name: a, protocol: HTTP}, {number: 80, name: b, protocol: HTTP}]\n  resolution: NONE\n"), false, false, ""},
		{"STATIC unix socket endpoint", se("  hosts: [uds.example.com]\n  ports: [{number: 6553, name: grpc, protocol: GRPC}]\n  resolution: STATIC\n  endpoints: [{address: 'unix:///path/to/socket'}]\n"), true, false, "unix-socket endpoints"},
		{"host that is an IP address", se("  hosts: [192.0.2.10]\n" + http2 + "  resolution: STATIC\n  endpoints: [{address: 192.0.2.10}]\n"), true, false, "hosts that are IP addresses"},
		{"UDP port", se("  hosts: [dns.example.com]\n  ports: [{number: 53, name: dns, protocol: UDP}]\n  resolution: DNS\n"), true, false, "`UDP`"},
		{"no ports", se("  hosts: [example.com]\n  resolution: DNS\n"), true, false, "entries without ports"},
		// DestinationRule.
		{"SIMPLE", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE}}\n"), true, true, ""},
		{"short host", dr("  host: reviews\n  trafficPolicy: {tls: {mode: SIMPLE}}\n"), true, true, ""},
		{"MUTUAL without a client certificate", dr("  host: example.com\n  trafficPolicy: {tls: {mode: MUTUAL}}\n"), false, false, ""},
		{"MUTUAL with files", dr("  host: example.com\n  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}}\n"), true, true, ""},
		{"credentialName with caCertificates", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}\n"), false, false, ""},
		{"credentialName with caCrl", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCrl: /crl.pem}}\n"), false, false, ""},
		{"insecureSkipVerify with caCertificates", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}\n"), false, false, ""},
		{"insecureSkipVerify with subjectAltNames", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [example.com]}}\n"), false, false, ""},
		{"insecureSkipVerify with credentialName (SIMPLE)", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, credentialName: c}}\n"), false, false, ""},
		{"insecureSkipVerify with credentialName (MUTUAL)", dr("  host: example.com\n  trafficPolicy: {tls: {mode: MUTUAL, insecureSkipVerify: true, credentialName: c}}\n"), true, true, ""},
		{"relative certificate path", dr("  host: example.com\n  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: certs/ca.pem}}\n"), true, false, "relative certificate paths"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, problems := ParseConfig("case.yaml", []byte(tc.doc))
			valid := len(cfg.Entries)+len(cfg.Rules) == 1
			for _, r := range cfg.Rules {
				valid = valid && r.Invalid == ""
			}
			if valid != tc.egress {
				t.Errorf("egressd: valid=%v, want %v; problems: %v", valid, tc.egress, problems)
			}
			if tc.istio != tc.egress && (tc.readme == "" || !strings.Contains(string(readme), tc.readme)) {
				t.Errorf("egressd decides this unlike Istio (valid=%v), and the README does not say so (want %q in it)", tc.istio, tc.readme)
			}
		})
	}
}
