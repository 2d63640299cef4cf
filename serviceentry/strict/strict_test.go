package strict

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
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
