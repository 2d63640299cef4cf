package serviceentry

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// seYAML wraps spec (YAML lines as they sit under "spec:", indented by two
// spaces) into a ServiceEntry ns/se that starts on line 1 of se.yaml.
func seYAML(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: ns\nspec:\n" + spec
}

// validateYAML decodes one ServiceEntry and validates it. Decoding must
// succeed.
func validateYAML(t *testing.T, spec string) (*Entry, []Problem) {
	t.Helper()
	objects, problems := Decode("se.yaml", []byte(seYAML(spec)))
	if len(problems) != 0 || len(objects) != 1 {
		t.Fatalf("Decode: %d objects, problems:\n%s", len(objects), problemLines(problems))
	}
	return Validate(objects[0])
}

// prefix is how every problem of an seYAML resource starts.
const prefix = "se.yaml:1: ServiceEntry ns/se: "

func TestValidateInvalid(t *testing.T) {
	tests := map[string]struct {
		spec string
		want []string // "severity: " + Problem.Error(), without prefix
	}{
		"no hosts": {
			spec: "  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{`error: spec.hosts: at least one host is required; list the names clients connect to, e.g. [api.example.com]`},
		},
		"bare wildcard host": {
			spec: "  hosts: ['*']\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{`error: spec.hosts[0]: "*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`},
		},
		"partial wildcard host": {
			spec: "  hosts: [api.example.com, 'api*.example.com']\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{`error: spec.hosts[1]: "api*.example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		},
		"ip address host": {
			spec: "  hosts: [192.0.2.10]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{`error: spec.hosts[0]: "192.0.2.10" is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`},
		},
		"underscore host": {
			spec: "  hosts: [my_bucket.s3.amazonaws.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{`error: spec.hosts[0]: "my_bucket.s3.amazonaws.com" contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`},
		},
		"duplicate hosts": {
			spec: "  hosts: [api.example.com, API.Example.com., api.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
			want: []string{
				`error: spec.hosts[1]: "API.Example.com." is the same host as spec.hosts[0] ("api.example.com" once normalised); remove one`,
				`error: spec.hosts[2]: "api.example.com" is already listed as spec.hosts[0]; remove one`,
			},
		},
		"bad addresses": {
			spec: "  hosts: [db.example.com]\n  addresses: [192.0.2.300, db.example.com, 10.0.0.0/33, '']\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
			want: []string{
				`error: spec.addresses[0]: "192.0.2.300" is not an IP address or CIDR range, e.g. "192.0.2.10" or "192.0.2.0/24"`,
				`error: spec.addresses[1]: "db.example.com" is a host name; spec.addresses holds IP addresses and CIDR ranges only: put host names in spec.hosts`,
				`error: spec.addresses[2]: "10.0.0.0/33" is not a valid CIDR range; write it as an IP address and prefix length, e.g. "192.0.2.0/24"`,
				`error: spec.addresses[3]: empty address; remove it`,
			},
		},
		"cidr with dns resolution": {
			spec: "  hosts: [db.example.com]\n  addresses: [10.0.0.0/24]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
			want: []string{`error: spec.addresses[0]: "10.0.0.0/24" is a CIDR range, which Istio allows only with resolution NONE or STATIC; list single IP addresses, or change the resolution`},
		},
		"no ports": {
			spec: "  hosts: [api.example.com]\n",
			want: []string{`error: spec.ports: at least one port is required: the gateway opens only the ports ServiceEntries list; add one, e.g. {number: 443, name: https, protocol: TLS}`},
		},
		"port number missing": {
			spec: "  hosts: [api.example.com]\n  ports: [{name: https, protocol: TLS}]\n",
			want: []string{`error: spec.ports[0].number: missing; set the port clients connect to (1-65535)`},
		},
		"port number out of range": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 70000, name: https, protocol: TLS}]\n",
			want: []string{`error: spec.ports[0].number: 70000 is out of range; use 1-65535`},
		},
		"duplicate port numbers": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}, {number: 443, name: h2, protocol: HTTP2}]\n",
			want: []string{`error: spec.ports[1].number: port 443 is already listed as spec.ports[0]; each port number may appear once`},
		},
		"duplicate port names": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: web, protocol: TLS}, {number: 80, name: web, protocol: HTTP}]\n",
			want: []string{`error: spec.ports[1].name: "web" is already the name of spec.ports[0]; port names must be unique`},
		},
		"invalid port name": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: HTTPS_PORT, protocol: TLS}]\n",
			want: []string{`error: spec.ports[0].name: "HTTPS_PORT" is not a valid port name: use at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit, e.g. "https"`},
		},
		"generated port name taken": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, protocol: TLS}, {number: 8443, name: tls-443, protocol: TLS}]\n",
			want: []string{`error: spec.ports[0].name: not set, and the name egressd would give it, "tls-443", is taken by spec.ports[1]; give this port a name`},
		},
		"unknown protocol": {
			spec: "  hosts: [mail.example.com]\n  ports: [{number: 25, name: smtp, protocol: SMTP}]\n",
			want: []string{`error: spec.ports[0].protocol: unknown protocol "SMTP"; use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, MONGO, MYSQL, REDIS`},
		},
		"udp": {
			spec: "  hosts: [dns.example.com]\n  ports: [{number: 53, name: dns, protocol: udp}]\n",
			want: []string{`error: spec.ports[0].protocol: UDP is not supported by the gateway; egressd proxies TCP-based protocols only`},
		},
		"http proxy protocol": {
			spec: "  hosts: [proxy.example.com]\n  ports: [{number: 3128, name: proxy, protocol: HTTP_PROXY}]\n",
			want: []string{`error: spec.ports[0].protocol: HTTP_PROXY is not supported by egressd; use HTTP`},
		},
		"target port out of range": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS, targetPort: 65536}]\n",
			want: []string{`error: spec.ports[0].targetPort: 65536 is out of range; use 1-65535, or leave it unset to use port 443`},
		},
		"dynamic dns": {
			spec: "  hosts: [api.example.com]\n  resolution: DYNAMIC_DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n",
			want: []string{`error: spec.resolution: DYNAMIC_DNS is not supported by egressd; use DNS, or NONE for wildcard hosts`},
		},
		"static endpoint host name": {
			spec: "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: 192.0.2.1}, {address: backend.example.com}]\n",
			want: []string{`error: spec.endpoints[1].address: "backend.example.com" is not an IP address; resolution STATIC needs IP addresses: use resolution DNS to connect to host names`},
		},
		"unix endpoint": {
			spec: "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: 'unix:///var/run/api.sock'}]\n",
			want: []string{`error: spec.endpoints[0].address: "unix:///var/run/api.sock" is a unix domain socket, which the gateway cannot connect to; use an IP address or host name`},
		},
		"endpoint without address": {
			spec: "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{}]\n",
			want: []string{`error: spec.endpoints[0].address: missing; egressd needs an address to connect to`},
		},
		"dns endpoints only on other networks (fails closed: the hosts are not resolved instead)": {
			spec: "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{network: remote}]\n",
			want: []string{
				`warning: spec.endpoints[0]: an endpoint with network "remote" and no address is reached through that network's gateway in Istio; egressd cannot reach it and leaves it out`,
				`error: spec.endpoints: no endpoint egressd can reach (each is on another network without an address); egressd would otherwise resolve the hosts themselves, which is not where the endpoints send traffic: add an address, or remove the endpoints`,
			},
		},
		"dns with wildcard host": {
			spec: "  hosts: ['*.example.com']\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n",
			want: []string{`error: spec.hosts[0]: "*.example.com" is a wildcard, which DNS cannot resolve; use resolution NONE, or list endpoints to send the traffic to`},
		},
		"dns endpoint wildcard": {
			spec: "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: '*.example.com'}, {address: 'backend.example.com:8443'}]\n",
			want: []string{
				`error: spec.endpoints[0].address: "*.example.com" is a wildcard, which DNS cannot resolve; name one host`,
				`error: spec.endpoints[1].address: "backend.example.com:8443" is not an IP address or host name; write only the address, and give ports in spec.ports or the endpoint's ports`,
			},
		},
		"dns round robin with two endpoints": {
			spec: "  hosts: [api.example.com]\n  resolution: DNS_ROUND_ROBIN\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: a.example.com}, {address: b.example.com}]\n",
			want: []string{`error: spec.endpoints: resolution DNS_ROUND_ROBIN allows at most one endpoint, found 2; use resolution DNS for several endpoints`},
		},
		"none with endpoints": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: 192.0.2.1}]\n",
			want: []string{`error: spec.endpoints: resolution NONE cannot have endpoints, as the gateway connects to the address the client asked for; remove the endpoints, or use resolution STATIC (IP addresses) or DNS (host names)`},
		},
		"endpoints and workload selector": {
			spec: "  hosts: [api.internal]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 192.0.2.1}]\n  workloadSelector: {labels: {app: api}}\n",
			want: []string{`error: spec.workloadSelector: only one of workloadSelector and endpoints may be set; remove one`},
		},
		"endpoint ports": {
			spec: "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: https, protocol: TLS}, {number: 80, protocol: HTTP}]\n  endpoints: [{address: 192.0.2.1, ports: {https: 8443, htps: 9443, http-80: 0, z: 70000}}]\n",
			want: []string{
				`error: spec.endpoints[0].ports[htps]: "htps" is not the name of a port of this ServiceEntry; use one of "https", "http-80"`,
				`error: spec.endpoints[0].ports[http-80]: 0 is out of range; use 1-65535`,
				`error: spec.endpoints[0].ports[z]: "z" is not the name of a port of this ServiceEntry; use one of "https", "http-80"`,
			},
		},
		"export to": {
			spec: "  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  exportTo: ['~', '.', Team_A, '.']\n",
			want: []string{
				`error: spec.exportTo[2]: "Team_A" is not a namespace; use "." (this namespace), "*" (all namespaces), "~" (none) or a namespace name`,
				`error: spec.exportTo[3]: "." is already listed as spec.exportTo[1]; remove one`,
				`error: spec.exportTo: "~" (export to no namespace) cannot be combined with other values; use it alone`,
			},
		},
		"several hosts with tcp": {
			spec: "  hosts: [a.example.com, b.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}, {number: 5432, name: pg, protocol: TCP}, {number: 27017, name: mongo, protocol: MONGO}]\n",
			want: []string{
				`error: spec.ports[1]: TCP port 5432 cannot tell 2 hosts apart: with resolution DNS and several hosts, every port must be HTTP- or TLS-based (as Istio requires); use one ServiceEntry per host, or resolution NONE`,
				`error: spec.ports[2]: MONGO port 27017 cannot tell 2 hosts apart: with resolution DNS and several hosts, every port must be HTTP- or TLS-based (as Istio requires); use one ServiceEntry per host, or resolution NONE`,
			},
		},
		"subject alt names and selector labels": {
			spec: "  hosts: [api.internal]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  subjectAltNames: ['']\n  workloadSelector: {labels: {'-app': api, tier: '*'}}\n",
			want: []string{
				`error: spec.subjectAltNames[0]: empty name; remove it`,
				`error: spec.workloadSelector.labels[-app]: "-app" is not a valid label key: use an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`,
				`error: spec.workloadSelector.labels[tier]: "*" is not a valid label value: use at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit (wildcards are not supported)`,
				`warning: spec.workloadSelector: egressd does not read pods or WorkloadEntries, so the workloads this selects are not endpoints at the gateway`,
			},
		},
		"every problem is reported": {
			spec: "  hosts: ['*', 10.0.0.1]\n  addresses: [nope]\n  resolution: STATIC\n  ports: [{number: 0, name: a}, {number: 53, name: b, protocol: UDP}]\n",
			want: []string{
				`error: spec.hosts[0]: "*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`,
				`error: spec.hosts[1]: "10.0.0.1" is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`,
				`error: spec.addresses[0]: "nope" is a host name; spec.addresses holds IP addresses and CIDR ranges only: put host names in spec.hosts`,
				`error: spec.ports[0].number: missing; set the port clients connect to (1-65535)`,
				`warning: spec.ports[0].protocol: not set; egressd treats the port as TCP (Istio would detect the protocol, the gateway cannot): set protocol: TCP, or HTTP, HTTPS or TLS if the port speaks that`,
				`error: spec.ports[1].protocol: UDP is not supported by the gateway; egressd proxies TCP-based protocols only`,
				`warning: spec.endpoints: resolution STATIC without endpoints: the hosts are allowed but have no address to connect to, so every request or connection to them fails; list the IP addresses to connect to, or use resolution DNS to resolve the hosts`,
			},
		},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d invalid cases", len(tests))
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e, problems := validateYAML(t, tt.spec)
			if e != nil {
				t.Errorf("got an Entry, want nil")
			}
			var want []string
			for _, w := range tt.want {
				sev, rest, _ := strings.Cut(w, ": ")
				want = append(want, sev+": "+prefix+rest)
			}
			if d := cmp.Diff(strings.Join(want, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateValid(t *testing.T) {
	ref := Ref{Kind: "ServiceEntry", Namespace: "ns", Name: "se", File: "se.yaml", Line: 1}
	tests := map[string]struct {
		spec     string
		want     *Entry
		warnings []string // without prefix
	}{
		"defaults": {
			spec: "  hosts: [API.Example.com., bücher.de]\n  ports: [{number: 443, name: https, protocol: tls}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"api.example.com", "xn--bcher-kva.de"},
				Ports:      []Port{{Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionNone,
			},
		},
		"static without endpoints (Istio accepts it)": {
			spec: "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: https, protocol: TLS}]\n",
			want: &Entry{Ref: ref, Hosts: []string{"api.example.com"}, Ports: []Port{{Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location: LocationMeshExternal, Resolution: ResolutionStatic},
			warnings: []string{`spec.endpoints: resolution STATIC without endpoints: the hosts are allowed but have no address to connect to, so every request or connection to them fails; list the IP addresses to connect to, or use resolution DNS to resolve the hosts`},
		},
		"an endpoint on another network is left out": {
			spec: "  hosts: [api.example.com]\n  resolution: STATIC\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{network: remote}, {address: 192.0.2.1}]\n",
			want: &Entry{Ref: ref, Hosts: []string{"api.example.com"}, Ports: []Port{{Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location: LocationMeshExternal, Resolution: ResolutionStatic, Endpoints: []Endpoint{{Address: "192.0.2.1"}}},
			warnings: []string{`spec.endpoints[0]: an endpoint with network "remote" and no address is reached through that network's gateway in Istio; egressd cannot reach it and leaves it out`},
		},
		"static with everything": {
			spec: `  hosts: [db.internal, db2.internal]
  addresses: [192.0.2.10, 2001:db8::1, 10.1.0.0/16]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 443, name: https, protocol: HTTPS, targetPort: 8443}
  - {number: 80, protocol: http}
  - {number: 50051, protocol: grpc-web}
  endpoints:
  - {address: 192.0.2.10, ports: {https: 9443}, weight: 2}
  - {address: '2001:db8:0:0::2'}
  exportTo: [".", team-a]
  subjectAltNames: ["spiffe://cluster.local/ns/db/sa/db"]
`,
			want: &Entry{
				Ref:       ref,
				Hosts:     []string{"db.internal", "db2.internal"},
				Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("10.1.0.0/16")},
				Ports: []Port{
					{Number: 443, Protocol: ProtocolHTTPS, Name: "https", TargetPort: 8443},
					{Number: 80, Protocol: ProtocolHTTP, Name: "http-80"},
					{Number: 50051, Protocol: ProtocolGRPCWeb, Name: "grpc-web-50051"},
				},
				Location:   LocationMeshInternal,
				Resolution: ResolutionStatic,
				Endpoints: []Endpoint{
					{Address: "192.0.2.10", Ports: map[string]uint32{"https": 9443}, Weight: 2},
					{Address: "2001:db8::2"},
				},
				ExportTo:        []string{".", "team-a"},
				SubjectAltNames: []string{"spiffe://cluster.local/ns/db/sa/db"},
			},
		},
		"dns endpoints normalised": {
			spec: "  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: Backend.Example.com.}, {address: 192.0.2.1}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"api.example.com"},
				Ports:      []Port{{Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionDNS,
				Endpoints:  []Endpoint{{Address: "backend.example.com"}, {Address: "192.0.2.1"}},
			},
		},
		"dns round robin with one endpoint and wildcard": {
			spec: "  hosts: ['*.example.com']\n  resolution: DNS_ROUND_ROBIN\n  ports: [{number: 443, name: https, protocol: TLS}]\n  endpoints: [{address: proxy.example.com}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"*.example.com"},
				Ports:      []Port{{Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionDNSRoundRobin,
				Endpoints:  []Endpoint{{Address: "proxy.example.com"}},
			},
		},
		"none with addresses and tcp": {
			spec: "  hosts: ['*.db.example.com']\n  addresses: [192.0.2.0/24]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"*.db.example.com"},
				Addresses:  []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
				Ports:      []Port{{Number: 5432, Protocol: ProtocolTCP, Name: "pg"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionNone,
			},
		},
		"several hosts with tcp and resolution none": {
			spec: "  hosts: [a.example.com, b.example.com]\n  ports: [{number: 6379, name: redis, protocol: REDIS}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"a.example.com", "b.example.com"},
				Ports:      []Port{{Number: 6379, Protocol: ProtocolRedis, Name: "redis"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionNone,
			},
		},
		"warnings keep the entry": {
			spec: "  hosts: ['*.example.com']\n  addresses: []\n  ports: [{number: 3306}, {number: 443, name: https, protocol: TLS}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"*.example.com"},
				Ports:      []Port{{Number: 3306, Protocol: ProtocolTCP, Name: "tcp-3306"}, {Number: 443, Protocol: ProtocolTLS, Name: "https"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionNone,
			},
			warnings: []string{
				`spec.ports[0].protocol: not set; egressd treats the port as TCP (Istio would detect the protocol, the gateway cannot): set protocol: TCP, or HTTP, HTTPS or TLS if the port speaks that`,
				`spec.ports[0]: TCP port 3306 on wildcard host "*.example.com" without spec.addresses: the gateway cannot tell such connections apart and will only route them by port; list the addresses, or use TLS or HTTP`,
			},
		},
		"cidr with host bits": {
			spec: "  hosts: [db.example.com]\n  addresses: [10.1.2.3/16]\n  ports: [{number: 3306, name: mysql, protocol: MYSQL}]\n",
			want: &Entry{
				Ref:        ref,
				Hosts:      []string{"db.example.com"},
				Addresses:  []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
				Ports:      []Port{{Number: 3306, Protocol: ProtocolMySQL, Name: "mysql"}},
				Location:   LocationMeshExternal,
				Resolution: ResolutionNone,
			},
			warnings: []string{`spec.addresses[0]: "10.1.2.3/16" has bits set after the prefix length; it means 10.1.0.0/16: write that`},
		},
		"static with workload selector": {
			spec: "  hosts: [api.internal]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: api, app.kubernetes.io/part-of: shop}}\n",
			want: &Entry{
				Ref:              ref,
				Hosts:            []string{"api.internal"},
				Ports:            []Port{{Number: 8080, Protocol: ProtocolHTTP, Name: "http"}},
				Location:         LocationMeshInternal,
				Resolution:       ResolutionStatic,
				WorkloadSelector: map[string]string{"app": "api", "app.kubernetes.io/part-of": "shop"},
			},
			warnings: []string{`spec.workloadSelector: egressd does not read pods or WorkloadEntries, so the workloads this selects are not endpoints at the gateway`},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e, problems := validateYAML(t, tt.spec)
			if d := cmp.Diff(tt.want, e, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("entry differs (-want +got):\n%s", d)
			}
			var want []string
			for _, w := range tt.warnings {
				want = append(want, "warning: "+prefix+w)
			}
			if d := cmp.Diff(strings.Join(want, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

// TestValidateMixedFile: one invalid ServiceEntry never hides the valid ones
// beside it.
func TestValidateMixedFile(t *testing.T) {
	data := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: github}
spec:
  hosts: [github.com, api.github.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: broken}
spec:
  hosts: ["*"]
  ports: [{number: 443, name: https, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pypi, namespace: build}
spec:
  hosts: [pypi.org, files.pythonhosted.org]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
`
	entries, problems := Parse("mixed.yaml", []byte(data))
	var names []string
	for _, e := range entries {
		names = append(names, e.Ref.String())
	}
	if d := cmp.Diff([]string{"default/github", "build/pypi"}, names); d != "" {
		t.Errorf("entries differ (-want +got):\n%s", d)
	}
	want := `error: mixed.yaml:9: ServiceEntry default/broken: spec.hosts[0]: "*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"` + "\n"
	if d := cmp.Diff(want, problemLines(problems)); d != "" {
		t.Errorf("problems differ (-want +got):\n%s", d)
	}
}

// TestValidateWithoutDecode: Validate takes objects built in code too (the
// Kubernetes source), where enum values and numbers are not checked by
// decoding.
func TestValidateWithoutDecode(t *testing.T) {
	ref := Ref{Kind: "ServiceEntry", Namespace: "ns", Name: "se"}
	tests := map[string]struct {
		se   *networkingv1alpha3.ServiceEntry
		want []string
	}{
		"no spec": {
			want: []string{`error: ServiceEntry ns/se: spec: missing; a ServiceEntry needs at least spec.hosts and spec.ports`},
		},
		"bad enums and nil items": {
			se: &networkingv1alpha3.ServiceEntry{
				Hosts:      []string{"api.example.com"},
				Ports:      []*networkingv1alpha3.ServicePort{nil, {Number: 443, Name: "https", Protocol: "TLS"}},
				Resolution: 17,
				Location:   9,
				Endpoints:  []*networkingv1alpha3.WorkloadEntry{nil},
			},
			want: []string{
				`error: ServiceEntry ns/se: spec.resolution: unknown resolution 17; use one of NONE, STATIC, DNS, DNS_ROUND_ROBIN`,
				`error: ServiceEntry ns/se: spec.ports[0]: empty port; remove it`,
				`error: ServiceEntry ns/se: spec.location: unknown location 9; use MESH_EXTERNAL or MESH_INTERNAL`,
				`error: ServiceEntry ns/se: spec.endpoints[0]: empty endpoint; remove it`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e, problems := Validate(Object{Ref: ref, ServiceEntry: tt.se})
			if e != nil {
				t.Errorf("got an Entry, want nil")
			}
			if d := cmp.Diff(strings.Join(tt.want, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}
