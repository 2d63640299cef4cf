package serviceentry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

func TestDecode(t *testing.T) {
	httpbin := &networkingv1alpha3.ServiceEntry{
		Hosts:      []string{"httpbin.org"},
		Ports:      []*networkingv1alpha3.ServicePort{{Number: 443, Name: "https", Protocol: "TLS"}},
		Resolution: networkingv1alpha3.ServiceEntry_DNS,
	}
	tests := map[string]struct {
		in       string
		want     []Object
		problems []string
	}{
		"empty file": {in: ""},
		"only comments and separators": {
			in: "# nothing here\n---\n---\n# still nothing\n",
		},
		"multi-document, lines and default namespace": {
			in: `# egress for the build jobs
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts: [httpbin.org]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
---

apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: all-fields
  namespace: build
spec:
  hosts:
  - api.example.com
  addresses: [192.0.2.10, 2001:db8::/32]
  ports:
  - number: 8443
    name: https
    protocol: HTTPS
    targetPort: 443
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 192.0.2.10
    ports: {https: 9443}
    weight: 3
    labels: {zone: a}
  exportTo: [".", other]
  subjectAltNames: ["spiffe://example.com/api"]
`,
			want: []Object{
				{Ref: Ref{Kind: "ServiceEntry", Namespace: "default", Name: "httpbin", File: "f.yaml", Line: 2}, APIVersion: "networking.istio.io/v1", ServiceEntry: httpbin},
				{
					Ref:        Ref{Kind: "ServiceEntry", Namespace: "build", Name: "all-fields", File: "f.yaml", Line: 13},
					APIVersion: "networking.istio.io/v1alpha3",
					ServiceEntry: &networkingv1alpha3.ServiceEntry{
						Hosts:      []string{"api.example.com"},
						Addresses:  []string{"192.0.2.10", "2001:db8::/32"},
						Ports:      []*networkingv1alpha3.ServicePort{{Number: 8443, Name: "https", Protocol: "HTTPS", TargetPort: 443}},
						Location:   networkingv1alpha3.ServiceEntry_MESH_INTERNAL,
						Resolution: networkingv1alpha3.ServiceEntry_STATIC,
						Endpoints: []*networkingv1alpha3.WorkloadEntry{{
							Address: "192.0.2.10",
							Ports:   map[string]uint32{"https": 9443},
							Weight:  3,
							Labels:  map[string]string{"zone": "a"},
						}},
						ExportTo:        []string{".", "other"},
						SubjectAltNames: []string{"spiffe://example.com/api"},
					},
				},
			},
		},
		"snake_case field names": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: snake}
spec:
  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, target_port: 8080}]
  export_to: ["."]
  workload_selector: {labels: {app: a}}
`,
			want: []Object{{
				Ref:        Ref{Kind: "ServiceEntry", Namespace: "default", Name: "snake", File: "f.yaml", Line: 1},
				APIVersion: "networking.istio.io/v1",
				ServiceEntry: &networkingv1alpha3.ServiceEntry{
					Hosts:            []string{"a.example.com"},
					Ports:            []*networkingv1alpha3.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP", TargetPort: 8080}},
					ExportTo:         []string{"."},
					WorkloadSelector: &networkingv1alpha3.WorkloadSelector{Labels: map[string]string{"app": "a"}},
				},
			}},
		},
		"no spec": {
			in: "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: empty, namespace: ns}\n",
			want: []Object{{
				Ref:          Ref{Kind: "ServiceEntry", Namespace: "ns", Name: "empty", File: "f.yaml", Line: 1},
				APIVersion:   "networking.istio.io/v1beta1",
				ServiceEntry: &networkingv1alpha3.ServiceEntry{},
			}},
		},
		"json": {
			in: `{
	"apiVersion": "networking.istio.io/v1",
	"kind": "ServiceEntry",
	"metadata": {"name": "httpbin"},
	"spec": {
		"hosts": ["httpbin.org"],
		"ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
		"resolution": "DNS"
	}
}
`,
			want: []Object{{Ref: Ref{Kind: "ServiceEntry", Namespace: "default", Name: "httpbin", File: "f.yaml", Line: 1}, APIVersion: "networking.istio.io/v1", ServiceEntry: httpbin}},
		},
		"json with unknown field": {
			in:       `{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "j"}, "spec": {"host": ["a.com"]}}`,
			problems: []string{`error: f.yaml:1: ServiceEntry default/j: spec.host: unknown field "host"; did you mean "hosts"?`},
		},
		"list": {
			in: `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata:
    name: httpbin
  spec:
    hosts: [httpbin.org]
    ports: [{number: 443, name: https, protocol: TLS}]
    resolution: DNS
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: dr}
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: second, namespace: two}
`,
			want: []Object{
				{Ref: Ref{Kind: "ServiceEntry", Namespace: "default", Name: "httpbin", File: "f.yaml", Line: 4}, APIVersion: "networking.istio.io/v1", ServiceEntry: httpbin},
				{Ref: Ref{Kind: "DestinationRule", Namespace: "default", Name: "dr", File: "f.yaml", Line: 12}, APIVersion: "networking.istio.io/v1", DestinationRule: &networkingv1alpha3.DestinationRule{}},
				{Ref: Ref{Kind: "ServiceEntry", Namespace: "two", Name: "second", File: "f.yaml", Line: 15}, APIVersion: "networking.istio.io/v1", ServiceEntry: &networkingv1alpha3.ServiceEntry{}},
			},
		},
		"typed list in json": {
			in: `{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntryList", "items": [
  {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "httpbin"},
   "spec": {"hosts": ["httpbin.org"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}], "resolution": "DNS"}}
]}`,
			want: []Object{{Ref: Ref{Kind: "ServiceEntry", Namespace: "default", Name: "httpbin", File: "f.yaml", Line: 2}, APIVersion: "networking.istio.io/v1", ServiceEntry: httpbin}},
		},
		"list items not a list": {
			in:       "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			problems: []string{`error: f.yaml:1: items: expected a list of resources, found a mapping`},
		},
		"unknown field": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: typo}
spec:
  hostz: [a.example.com]
  ports:
  - number: 443
    nmber: 444
    protocl: TLS
  endpoints:
  - adress: 192.0.2.1
  subjectAltName: [x]
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/typo: spec.hostz: unknown field "hostz"; did you mean "hosts"?`,
				`error: f.yaml:1: ServiceEntry default/typo: spec.ports[0].nmber: unknown field "nmber"; did you mean "number"?`,
				`error: f.yaml:1: ServiceEntry default/typo: spec.ports[0].protocl: unknown field "protocl"; did you mean "protocol"?`,
				`error: f.yaml:1: ServiceEntry default/typo: spec.endpoints[0].adress: unknown field "adress"; did you mean "address"?`,
				`error: f.yaml:1: ServiceEntry default/typo: spec.subjectAltName: unknown field "subjectAltName"; did you mean "subjectAltNames"?`,
			},
		},
		"unknown field without a near match": {
			in: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec:\n  ports: [{number: 80, weight: 3}]\n",
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/x: spec.ports[0].weight: unknown field "weight"; valid fields here: number, protocol, name, targetPort`,
			},
		},
		"bad enums": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: enums}
spec:
  resolution: DNSS
  location: mesh_internal
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: enums2}
spec:
  resolution: ROUND_ROBIN
  location: 1
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: enums3}
spec:
  resolution: LOOKUP
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/enums: spec.resolution: invalid value "DNSS"; did you mean DNS? (use one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)`,
				`error: f.yaml:1: ServiceEntry default/enums: spec.location: invalid value "mesh_internal"; values are upper case: write MESH_INTERNAL`,
				`error: f.yaml:8: ServiceEntry default/enums2: spec.resolution: invalid value "ROUND_ROBIN"; did you mean DNS_ROUND_ROBIN? (use one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)`,
				`error: f.yaml:8: ServiceEntry default/enums2: spec.location: expected one of MESH_EXTERNAL, MESH_INTERNAL, found the number 1`,
				`error: f.yaml:15: ServiceEntry default/enums3: spec.resolution: invalid value "LOOKUP"; use one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS`,
			},
		},
		"wrong types": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: types}
spec:
  hosts: api.example.com
  ports:
  - number: "443"
    name: 443
    targetPort: -1
  - number: 4294967296
  - 80
  endpoints:
  - address: 192.0.2.1
    ports: {https: x}
  -
  exportTo: [{a: b}]
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/types: spec.hosts: expected a list, found the string "api.example.com"; write a list, e.g. [api.example.com]`,
				`error: f.yaml:1: ServiceEntry default/types: spec.ports[0].number: expected a whole number, found the string "443"; remove the quotes`,
				`error: f.yaml:1: ServiceEntry default/types: spec.ports[0].name: expected a string, found the number 443; quote it: "443"`,
				`error: f.yaml:1: ServiceEntry default/types: spec.ports[0].targetPort: -1 is negative; use a number from 0 to 4294967295`,
				`error: f.yaml:1: ServiceEntry default/types: spec.ports[1].number: 4294967296 is out of range; use a number from 0 to 4294967295`,
				`error: f.yaml:1: ServiceEntry default/types: spec.ports[2]: expected a mapping, found the number 80`,
				`error: f.yaml:1: ServiceEntry default/types: spec.endpoints[0].ports[https]: expected a whole number, found the string "x"`,
				`error: f.yaml:1: ServiceEntry default/types: spec.endpoints[1]: empty list item; remove it`,
				`error: f.yaml:1: ServiceEntry default/types: spec.exportTo[0]: expected a string, found a mapping`,
			},
		},
		"duplicate keys": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dup}
spec:
  hosts: [a.example.com]
  exportTo: ["."]
  export_to: ["*"]
  hosts: [b.example.com]
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/dup: spec.exportTo: set twice (as "exportTo" and "export_to"); keep one`,
				`error: f.yaml:1: ServiceEntry default/dup: spec.hosts: set twice (as "hosts" and "hosts"); keep one`,
			},
		},
		"unknown top-level field": {
			in: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: top}\nspecs: {}\nstatus: {}\n",
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/top: specs: unknown field "specs"; did you mean "spec"?`,
			},
		},
		"ignored kinds": {
			in: `apiVersion: networking.istio.io/v1
kind: EnvoyFilter
metadata: {name: lua, namespace: web}
spec: {}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
`,
			problems: []string{
				`warning: f.yaml:1: EnvoyFilter web/lua: kind EnvoyFilter is not handled yet; ignored`,
				`warning: f.yaml:6: RequestAuthentication default/jwt: kind RequestAuthentication is not handled yet; ignored`,
			},
		},
		"unknown kinds": {
			in: `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: example.com/v1
kind: DestinationRule
metadata: {name: lookalike}
---
apiVersion: v1
kind: ConfigMap
`,
			problems: []string{
				`warning: f.yaml:1: Deployment default/web: kind: Deployment (apiVersion "apps/v1") is not an Istio resource; skipped (egressd reads ServiceEntry, DestinationRule and VirtualService, networking.istio.io/v1, AuthorizationPolicy and PeerAuthentication, security.istio.io/v1)`,
				`error: f.yaml:5: DestinationRule default/lookalike: apiVersion: "example.com/v1" is not an API version of DestinationRule; use networking.istio.io/v1 (v1beta1 and v1alpha3 are accepted too)`,
				`warning: f.yaml:9: ConfigMap default/(unnamed): kind: ConfigMap (apiVersion "v1") is not an Istio resource; skipped (egressd reads ServiceEntry, DestinationRule and VirtualService, networking.istio.io/v1, AuthorizationPolicy and PeerAuthentication, security.istio.io/v1)`,
			},
		},
		"missing kind and not a mapping": {
			in: "apiVersion: networking.istio.io/v1\nmetadata: {name: nokind}\n---\n- a\n- b\n---\nhello\n",
			problems: []string{
				`error: f.yaml:1: resource default/nokind: kind: missing; set kind: ServiceEntry, DestinationRule, AuthorizationPolicy or PeerAuthentication`,
				`error: f.yaml:4: a resource must be a mapping with apiVersion, kind, metadata and spec; found a list`,
				`error: f.yaml:7: a resource must be a mapping with apiVersion, kind, metadata and spec; found the string "hello"`,
			},
		},
		"bad api version and metadata": {
			in: `apiVersion: networking.istio.io/v2
kind: ServiceEntry
metadata: {name: Bad_Name, namespace: "-ns"}
---
kind: ServiceEntry
metadata: {namespace: ns}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {generateName: se-}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: 42}
---
apiVersion: 3
kind: ServiceEntry
metadata: {name: late-name}
---
apiVersion:
kind: ServiceEntry
metadata: {name: null-version}
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry -ns/Bad_Name: metadata.name: "Bad_Name" is not a valid name: use at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`,
				`error: f.yaml:1: ServiceEntry -ns/Bad_Name: metadata.namespace: "-ns" is not a valid namespace: use at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit`,
				`error: f.yaml:1: ServiceEntry -ns/Bad_Name: apiVersion: "networking.istio.io/v2" is not an API version of ServiceEntry; use networking.istio.io/v1 (v1beta1 and v1alpha3 are accepted too)`,
				`error: f.yaml:5: ServiceEntry ns/: metadata.name: missing; every resource needs a name`,
				`error: f.yaml:5: ServiceEntry ns/: apiVersion: missing; set apiVersion: networking.istio.io/v1`,
				`error: f.yaml:8: ServiceEntry default/: metadata.name: generateName is not supported; set metadata.name`,
				`error: f.yaml:12: ServiceEntry default/: metadata.name: missing; every resource needs a name`,
				`error: f.yaml:15: ServiceEntry default/: metadata.name: expected a string, found the number 42; quote it: "42"`,
				`error: f.yaml:19: ServiceEntry default/late-name: apiVersion: expected a string, found the number 3; quote it: "3"`,
				`error: f.yaml:23: ServiceEntry default/null-version: apiVersion: missing; set apiVersion: networking.istio.io/v1`,
			},
		},
		"yaml syntax error keeps what came before": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts: [httpbin.org]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: broken
spec:
  hosts: [a.example.com
  ports: []
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: never-read
`,
			want: []Object{{Ref: Ref{Kind: "ServiceEntry", Namespace: "default", Name: "httpbin", File: "f.yaml", Line: 1}, APIVersion: "networking.istio.io/v1", ServiceEntry: httpbin}},
			problems: []string{
				`error: f.yaml:14: invalid YAML: did not find expected ',' or ']'; nothing after this point in the file was read`,
			},
		},
		"tab indentation": {
			in: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n\tname: tabs\n",
			problems: []string{
				`error: f.yaml:4: invalid YAML: found character that cannot start any token; nothing after this point in the file was read`,
			},
		},
		"aliases and merge keys": {
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: alias}
spec:
  hosts: &h [a.example.com]
  subjectAltNames: *h
  ports:
  - &p {number: 443, name: https}
  - <<: *p
    number: 8443
`,
			problems: []string{
				`error: f.yaml:1: ServiceEntry default/alias: spec.subjectAltNames: YAML aliases are not supported; write the value out in full`,
				`error: f.yaml:1: ServiceEntry default/alias: spec.ports[1].<<: YAML merge keys are not supported; write the fields out in full`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, problems := Decode("f.yaml", []byte(tt.in))
			if d := cmp.Diff(tt.want, got, protocmp.Transform()); d != "" {
				t.Errorf("objects differ (-want +got):\n%s", d)
			}
			if d := cmp.Diff(strings.Join(tt.problems, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeDestinationRule(t *testing.T) {
	tests := map[string]struct {
		in       string
		want     []Object
		problems []string
	}{
		"every TLS field, and fields egressd ignores": {
			in: `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: partner, namespace: egress}
spec:
  host: api.partner.example
  exportTo: ["."]
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {tcp: {connectTimeout: 1.5s, maxConnections: 10}}
    tls:
      mode: MUTUAL
      clientCertificate: /etc/certs/client.pem
      privateKey: /etc/certs/client.key
      caCertificates: /etc/certs/ca.pem
      sni: api.partner.example
      subjectAltNames: [api.partner.example]
      insecureSkipVerify: false
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: SIMPLE, credential_name: partner-ca}
  subsets:
  - name: v1
    labels: {version: v1}
`,
			want: []Object{{
				Ref:        Ref{Kind: "DestinationRule", Namespace: "egress", Name: "partner", File: "f.yaml", Line: 1},
				APIVersion: "networking.istio.io/v1beta1",
				DestinationRule: &networkingv1alpha3.DestinationRule{
					Host:     "api.partner.example",
					ExportTo: []string{"."},
					TrafficPolicy: &networkingv1alpha3.TrafficPolicy{
						LoadBalancer: &networkingv1alpha3.LoadBalancerSettings{
							LbPolicy: &networkingv1alpha3.LoadBalancerSettings_Simple{Simple: networkingv1alpha3.LoadBalancerSettings_LEAST_REQUEST},
						},
						ConnectionPool: &networkingv1alpha3.ConnectionPoolSettings{
							Tcp: &networkingv1alpha3.ConnectionPoolSettings_TCPSettings{ConnectTimeout: durationpb.New(1500 * time.Millisecond), MaxConnections: 10},
						},
						Tls: &networkingv1alpha3.ClientTLSSettings{
							Mode:               networkingv1alpha3.ClientTLSSettings_MUTUAL,
							ClientCertificate:  "/etc/certs/client.pem",
							PrivateKey:         "/etc/certs/client.key",
							CaCertificates:     "/etc/certs/ca.pem",
							Sni:                "api.partner.example",
							SubjectAltNames:    []string{"api.partner.example"},
							InsecureSkipVerify: wrapperspb.Bool(false),
						},
						PortLevelSettings: []*networkingv1alpha3.TrafficPolicy_PortTrafficPolicy{{
							Port: &networkingv1alpha3.PortSelector{Number: 8443},
							Tls:  &networkingv1alpha3.ClientTLSSettings{Mode: networkingv1alpha3.ClientTLSSettings_SIMPLE, CredentialName: "partner-ca"},
						}},
					},
					Subsets: []*networkingv1alpha3.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
				},
			}},
		},
		"json, no spec": {
			in: `{"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule", "metadata": {"name": "empty"}}`,
			want: []Object{{
				Ref:             Ref{Kind: "DestinationRule", Namespace: "default", Name: "empty", File: "f.yaml", Line: 1},
				APIVersion:      "networking.istio.io/v1alpha3",
				DestinationRule: &networkingv1alpha3.DestinationRule{},
			}},
		},
		"unknown fields": {
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: typos, namespace: egress}
spec:
  hosts: [api.example.com]
  trafficPolicy:
    tls:
      mode: SIMPLE
      sniName: api.example.com
      caCertificate: /etc/ca.pem
    portLevelSettings:
    - port: {number: 443, name: https}
      tsl: {mode: SIMPLE}
  trafficPolicies: {}
`,
			problems: []string{
				`error: f.yaml:1: DestinationRule egress/typos: spec.hosts: unknown field "hosts"; did you mean "host"?`,
				`error: f.yaml:1: DestinationRule egress/typos: spec.trafficPolicy.tls.sniName: unknown field "sniName"; valid fields here: mode, clientCertificate, privateKey, caCertificates, credentialName, subjectAltNames, sni, insecureSkipVerify, caCrl`,
				`error: f.yaml:1: DestinationRule egress/typos: spec.trafficPolicy.tls.caCertificate: unknown field "caCertificate"; did you mean "caCertificates"?`,
				`error: f.yaml:1: DestinationRule egress/typos: spec.trafficPolicy.portLevelSettings[0].port.name: unknown field "name"; valid fields here: number`,
				`error: f.yaml:1: DestinationRule egress/typos: spec.trafficPolicy.portLevelSettings[0].tsl: unknown field "tsl"; valid fields here: port, loadBalancer, connectionPool, outlierDetection, tls`,
				`error: f.yaml:1: DestinationRule egress/typos: spec.trafficPolicies: unknown field "trafficPolicies"; valid fields here: host, trafficPolicy, subsets, exportTo, workloadSelector`,
			},
		},
		"bad enums": {
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: enums}
spec:
  host: api.example.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBBIN}
    tls: {mode: mutual}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: STRICT}
    - port: {number: 8443}
      tls: {mode: ISTIO}
`,
			problems: []string{
				`error: f.yaml:1: DestinationRule default/enums: spec.trafficPolicy.loadBalancer.simple: invalid value "ROUND_ROBBIN"; did you mean ROUND_ROBIN? (use one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST)`,
				`error: f.yaml:1: DestinationRule default/enums: spec.trafficPolicy.tls.mode: invalid value "mutual"; values are upper case: write MUTUAL`,
				`error: f.yaml:1: DestinationRule default/enums: spec.trafficPolicy.portLevelSettings[0].tls.mode: invalid value "STRICT"; use one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL`,
				`error: f.yaml:1: DestinationRule default/enums: spec.trafficPolicy.portLevelSettings[1].tls.mode: invalid value "ISTIO"; did you mean ISTIO_MUTUAL? (use one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL)`,
			},
		},
		"wrong types": {
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: types}
spec:
  host: [api.example.com]
  exportTo: "."
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 5, maxConnections: "10"}}
    tls:
      mode: SIMPLE
      insecureSkipVerify: "yes"
      subjectAltNames: api.example.com
    portLevelSettings:
    - port: {number: "443"}
    - port: 8443
`,
			problems: []string{
				`error: f.yaml:1: DestinationRule default/types: spec.host: expected a string, found a list`,
				`error: f.yaml:1: DestinationRule default/types: spec.exportTo: expected a list, found the string "."; write a list, e.g. [.]`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.connectionPool.tcp.connectTimeout: expected a duration in seconds with an "s" suffix, e.g. "1.5s" or "30s", found the number 5`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.connectionPool.tcp.maxConnections: expected a whole number, found the string "10"; remove the quotes`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.tls.insecureSkipVerify: expected true or false, found the string "yes"`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.tls.subjectAltNames: expected a list, found the string "api.example.com"; write a list, e.g. [api.example.com]`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.portLevelSettings[0].port.number: expected a whole number, found the string "443"; remove the quotes`,
				`error: f.yaml:1: DestinationRule default/types: spec.trafficPolicy.portLevelSettings[1].port: expected a mapping, found the number 8443`,
			},
		},
		"one of": {
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: oneof}
spec:
  host: api.example.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      consistentHash: {httpHeaderName: x-user}
`,
			problems: []string{
				`error: f.yaml:1: DestinationRule default/oneof: spec.trafficPolicy.loadBalancer.consistentHash: cannot be set together with "simple": set only one of simple, consistentHash`,
			},
		},
		"bad api version and metadata": {
			in: `apiVersion: networking.istio.io/v2
kind: DestinationRule
metadata: {name: Bad_Name}
spec: {host: api.example.com}
`,
			problems: []string{
				`error: f.yaml:1: DestinationRule default/Bad_Name: metadata.name: "Bad_Name" is not a valid name: use at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`,
				`error: f.yaml:1: DestinationRule default/Bad_Name: apiVersion: "networking.istio.io/v2" is not an API version of DestinationRule; use networking.istio.io/v1 (v1beta1 and v1alpha3 are accepted too)`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, problems := Decode("f.yaml", []byte(tt.in))
			if d := cmp.Diff(tt.want, got, protocmp.Transform()); d != "" {
				t.Errorf("objects differ (-want +got):\n%s", d)
			}
			if d := cmp.Diff(strings.Join(tt.problems, "\n"), strings.TrimSuffix(problemLines(problems), "\n")); d != "" {
				t.Errorf("problems differ (-want +got):\n%s", d)
			}
		})
	}
}

// TestSplitDocuments: a stream is cut at its document markers only, and
// every chunk knows the line it starts on.
func TestSplitDocuments(t *testing.T) {
	type part struct {
		text string
		line int
	}
	for name, tc := range map[string]struct {
		in   string
		want []part
	}{
		"one document":     {"a: 1\nb: 2\n", []part{{"a: 1\nb: 2\n", 0}}},
		"leading marker":   {"---\na: 1\n", []part{{"---\na: 1\n", 0}}},
		"three documents":  {"a: 1\n---\nb: 2\n--- {c: 3}\n", []part{{"a: 1\n", 0}, {"---\nb: 2\n", 1}, {"--- {c: 3}\n", 3}}},
		"not a marker":     {"a: 1\n----\nb: ---\n  ---\n", []part{{"a: 1\n----\nb: ---\n  ---\n", 0}}},
		"CRLF":             {"a: 1\r\n---\r\nb: 2\r\n", []part{{"a: 1\r\n", 0}, {"---\r\nb: 2\r\n", 1}}},
		"block scalar end": {"a: |\n  text\n---\nb: 2", []part{{"a: |\n  text\n", 0}, {"---\nb: 2", 2}}},
		"directive":        {"%YAML 1.2\n---\na: 1\n---\nb: 2\n", []part{{"%YAML 1.2\n---\na: 1\n---\nb: 2\n", 0}}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []part
			for _, c := range splitDocuments([]byte(tc.in)) {
				got = append(got, part{string(c.data), c.line})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("splitDocuments(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

// TestDecodeAcrossChunks: lines count from the start of the file in every
// document, and a syntax error keeps the documents before it, drops those
// after, and names its own line.
func TestDecodeAcrossChunks(t *testing.T) {
	doc := func(name string) string {
		return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name + "}\nspec:\n  hosts: [" + name + ".example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"
	}
	in := doc("a") + "---\n" + doc("b") + "---\n" + "x: [unclosed\n" + "---\n" + doc("c")
	objects, problems := Decode("f.yaml", []byte(in))
	if len(objects) != 2 || objects[0].Ref.Name != "a" || objects[1].Ref.Name != "b" || objects[1].Ref.Line != 8 {
		t.Errorf("objects %+v", objects)
	}
	if len(problems) != 1 || problems[0].Code != CodeInvalidYAML || problems[0].Ref.Line < 14 || problems[0].Ref.Line > 15 {
		t.Errorf("problems %+v", problems)
	}
}
