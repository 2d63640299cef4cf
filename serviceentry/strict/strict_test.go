package strict

import (
	"encoding/json"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

func node(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

// TestDecode: one mistake at a time, each named by its field path and
// saying how to fix it; a clean document fills the message.
func TestDecode(t *testing.T) {
	for name, tc := range map[string]struct {
		doc, field, msg string
	}{
		"unknown field":             {"hosts: [a.example.com]\nresolutoin: DNS", "spec.resolutoin", `did you mean "resolution"?`},
		"enum case":                 {"resolution: dns", "spec.resolution", "values are upper case: write DNS"},
		"enum typo":                 {"resolution: STATC", "spec.resolution", "did you mean STATIC?"},
		"enum substring":            {"location: external", "spec.location", "did you mean MESH_EXTERNAL?"},
		"number as string":          {`ports: [{number: "80", name: http}]`, "spec.ports[0].number", "remove the quotes"},
		"negative":                  {"ports: [{number: -1, name: http}]", "spec.ports[0].number", "is negative"},
		"too large":                 {"ports: [{number: 4294967296, name: http}]", "spec.ports[0].number", "out of range"},
		"string as number":          {"hosts: [80]", "spec.hosts[0]", `quote it: "80"`},
		"scalar for list":           {"hosts: a.example.com", "spec.hosts", "write a list, e.g. [a.example.com]"},
		"null list item":            {"hosts: [a, null]", "spec.hosts[1]", "empty list item"},
		"set twice":                 {"hosts: [a]\nhosts: [b]", "spec.hosts", "set twice"},
		"json and proto name twice": {"exportTo: [a]\nexport_to: [b]", "spec.exportTo", "set twice"},
		"map null value":            {"endpoints: [{address: 1.2.3.4, labels: {app: null}}]", "spec.endpoints[0].labels[app]", "no value"},
		"alias":                     {"hosts: &h [a]\nsubjectAltNames: *h", "spec.subjectAltNames", "aliases are not supported"},
		"merge key":                 {"<<: {hosts: [a]}", "spec.<<", "merge keys are not supported"},
		"not a mapping":             {"[a, b]", "spec", "expected a mapping, found a list"},
		"bool":                      {"endpoints: [{address: a, weight: yes}]", "spec.endpoints[0].weight", "expected a whole number"},
	} {
		t.Run(name, func(t *testing.T) {
			se := &networkingv1alpha3.ServiceEntry{}
			errs := Decode(node(t, tc.doc), se, "spec")
			if len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs[0].Message, tc.msg) {
				t.Errorf("Decode = %+v, want one mistake at %s saying %q", errs, tc.field, tc.msg)
			}
			if len(se.GetHosts()) > 0 {
				t.Errorf("the message was filled despite a mistake: %v", se)
			}
		})
	}
	se := &networkingv1alpha3.ServiceEntry{}
	if errs := Decode(node(t, "hosts: [a.example.com]\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS\nexport_to: ['.']"), se, "spec"); len(errs) != 0 {
		t.Fatalf("clean document: %+v", errs)
	}
	if se.GetHosts()[0] != "a.example.com" || se.GetPorts()[0].GetNumber() != 443 || se.GetResolution() != networkingv1alpha3.ServiceEntry_DNS || se.GetExportTo()[0] != "." {
		t.Errorf("decoded %v", se)
	}
}

func TestDecodeWellKnown(t *testing.T) {
	d := &durationpb.Duration{}
	if errs := Decode(node(t, `"1.5s"`), d, "timeout"); len(errs) != 0 || d.AsDuration().Seconds() != 1.5 {
		t.Errorf("duration: %v %v", errs, d)
	}
	dr := &networkingv1alpha3.DestinationRule{}
	errs := Decode(node(t, "host: a\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 5}}}"), dr, "spec")
	if len(errs) != 1 || errs[0].Field != "spec.trafficPolicy.connectionPool.tcp.connectTimeout" || !strings.Contains(errs[0].Message, `"s" suffix`) {
		t.Errorf("bad duration: %+v", errs)
	}
}

func TestFieldsAndString(t *testing.T) {
	f, errs := Fields(node(t, "a: 1\nb: x\na: 2\n? [k]\n: v"), "")
	if len(errs) != 2 || errs[0].Field != "a" || !strings.Contains(errs[1].Message, "plain string") || f["b"].Value != "x" {
		t.Errorf("Fields = %v, %+v", f, errs)
	}
	if s, errs := String(node(t, "true"), "metadata.name"); s != "" || len(errs) != 1 || !strings.Contains(errs[0].Message, `quote it: "true"`) {
		t.Errorf("String(true) = %q %+v", s, errs)
	}
	if s, errs := String(nil, "kind"); s != "" || errs != nil {
		t.Errorf("String(nil) = %q %+v", s, errs)
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"hosts", "ports", "resolution"}
	if got := Suggest("prots", valid); got != `did you mean "ports"?` {
		t.Errorf("Suggest(prots) = %q", got)
	}
	if got := Suggest("zzzzzz", valid); got != "valid fields here: hosts, ports, resolution" {
		t.Errorf("Suggest(zzzzzz) = %q", got)
	}
}

// jsonOf converts a YAML node to a JSON-ready value, keys as strings: the
// oracle's way from YAML to protojson.
func jsonOf(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[n.Content[i].Value] = jsonOf(n.Content[i+1])
		}
		return out
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			out = append(out, jsonOf(c))
		}
		return out
	}
	var v any
	_ = n.Decode(&v)
	return v
}

// viaProtojson is the oracle: what protojson makes of the same document.
func viaProtojson(n *yaml.Node, m proto.Message) error {
	b, err := json.Marshal(jsonOf(n))
	if err != nil {
		return err
	}
	return protojson.Unmarshal(b, m)
}

// decodeAgrees checks that a document Decode accepts is what protojson
// makes of it, for every kind egressd reads.
func decodeAgrees(t *testing.T, doc string) {
	t.Helper()
	var root yaml.Node
	if yaml.Unmarshal([]byte(doc), &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	n := root.Content[0]
	for _, newMsg := range []func() proto.Message{
		func() proto.Message { return &networkingv1alpha3.ServiceEntry{} },
		func() proto.Message { return &networkingv1alpha3.DestinationRule{} },
		func() proto.Message { return &networkingv1alpha3.Sidecar{} },
		func() proto.Message { return &securityv1beta1.AuthorizationPolicy{} },
		func() proto.Message { return &securityv1beta1.PeerAuthentication{} },
	} {
		got, want := newMsg(), newMsg()
		if errs := Decode(n, got, "spec"); len(errs) > 0 {
			continue
		}
		if err := viaProtojson(n, want); err != nil {
			t.Errorf("%T: Decode accepted what protojson refuses (%v):\n%s", got, err, doc)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%T: Decode and protojson differ:\n got %v\nwant %v\n%s", got, got, want, doc)
		}
	}
}

// agreeingDocuments cover every kind of field: scalars of each type,
// enums, lists, maps with string and number keys, oneofs, wrappers,
// durations and nested messages.
var agreeingDocuments = []string{
	"hosts: [a.example.com, '*.b.example.com']\naddresses: [198.18.0.1/32]\nports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]\nresolution: DNS\nlocation: MESH_EXTERNAL\nexport_to: ['.']",
	"hosts: [a]\nendpoints: [{address: 198.18.0.2, ports: {http: 8080}, labels: {app: x}, weight: 3, locality: r/z}]\nworkloadSelector: {labels: {a: b}}\nsubjectAltNames: [spiffe://x/ns/y/sa/z]",
	"host: a.example.com\ntrafficPolicy:\n  tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k, caCertificates: /ca, sni: a.example.com, subjectAltNames: [a], insecureSkipVerify: false}\n  connectionPool: {tcp: {maxConnections: 10, connectTimeout: 1.5s, tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}}, http: {h2UpgradePolicy: UPGRADE, idleTimeout: 30s, maxRetries: 3}}\n  outlierDetection: {consecutiveGatewayErrors: 5, consecutive5xxErrors: 7, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n  loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 10s}\n  portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE}}]\nsubsets: [{name: v1, labels: {version: v1}}]\nexportTo: ['*']",
	"host: b\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 1024}}}",
	"host: c\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}}, localityLbSetting: {enabled: true, distribute: [{from: a/*, to: {'b/*': 80, 'c/*': 20}}]}}}",
	"selector: {matchLabels: {app: egressd}}\naction: DENY\nrules:\n- from: [{source: {principals: [cluster.local/ns/a/sa/b], namespaces: [a], ipBlocks: [10.0.0.0/8]}}]\n  to: [{operation: {hosts: [a.example.com], ports: ['443'], methods: [GET], paths: [/x]}}]\n  when: [{key: connection.sni, values: [a.example.com]}]",
	"action: CUSTOM\nprovider: {name: ext}\nrules: [{}]",
	"selector: {matchLabels: {app: x}}\nmtls: {mode: STRICT}\nportLevelMtls: {8080: {mode: PERMISSIVE}, 9090: {mode: DISABLE}}",
	"egress: [{hosts: ['./*', 'istio-system/*'], port: {number: 80, protocol: HTTP, name: http}}]\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}",
}

// TestDecodeMatchesProtojson: Decode sets fields itself (no JSON in
// between); for every document it accepts, the message is the one
// protojson makes.
func TestDecodeMatchesProtojson(t *testing.T) {
	accepted := 0
	for _, doc := range agreeingDocuments {
		decodeAgrees(t, doc)
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
			t.Fatal(err)
		}
		for _, m := range []proto.Message{&networkingv1alpha3.ServiceEntry{}, &networkingv1alpha3.DestinationRule{}, &networkingv1alpha3.Sidecar{}, &securityv1beta1.AuthorizationPolicy{}, &securityv1beta1.PeerAuthentication{}} {
			if len(Decode(root.Content[0], m, "spec")) == 0 {
				accepted++
				break
			}
		}
	}
	if accepted != len(agreeingDocuments) {
		t.Errorf("only %d of %d documents decode cleanly as some kind", accepted, len(agreeingDocuments))
	}
}

// FuzzDecodeMatchesProtojson: what Decode accepts, protojson accepts too,
// and they make the same message.
func FuzzDecodeMatchesProtojson(f *testing.F) {
	for _, doc := range agreeingDocuments {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if len(doc) > 4096 {
			return
		}
		decodeAgrees(t, doc)
	})
}
