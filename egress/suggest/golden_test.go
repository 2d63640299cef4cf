package suggest

import (
	"encoding/json"
	"testing"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry"
	"sigs.k8s.io/yaml"
)

// goldenInput is one testdata/in/<case>.yaml: options, the allowlist in
// force (ServiceEntry YAML) and the recorded decisions.
type goldenInput struct {
	Namespace   string               `json:"namespace"`
	WildcardMin int                  `json:"wildcard_min"`
	Allowlist   string               `json:"allowlist"`
	Decisions   []*decision.Decision `json:"decisions"`
}

// TestGolden: testdata/in/<case>.yaml -> testdata/out/<case>.yaml (YAML's
// output) and testdata/out/<case>.json (the suggestions).
func TestGolden(t *testing.T) {
	golden := testkit.NewGolden("testdata/out")
	for _, in := range testkit.Inputs(t, "testdata/in/*.yaml") {
		name, data := in.Name, in.Data
		t.Run(name, func(t *testing.T) {
			var g goldenInput
			if err := yaml.UnmarshalStrict(data, &g); err != nil {
				t.Fatalf("%s: %v", in.Path, err)
			}
			o := Options{Namespace: g.Namespace, WildcardMin: g.WildcardMin}
			if g.Allowlist != "" {
				o.Allowlist = mustAllowlist(t, g.Allowlist)
			}
			ss := Suggest(g.Decisions, o)
			y, err := YAML(ss, o)
			if err != nil {
				t.Fatal(err)
			}
			j, err := json.MarshalIndent(ss, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, name+".yaml", y)
			golden.Check(t, name+".json", append(j, '\n'))
		})
	}
	golden.Stale(t, "*")
}

// mustAllowlist compiles ServiceEntry YAML, failing on any error problem.
func mustAllowlist(t *testing.T, src string) *serviceentry.Allowlist {
	t.Helper()
	a := serviceentry.CompileYAML("allowlist.yaml", []byte(src))
	for _, p := range a.Errors() {
		t.Fatalf("allowlist: %v", p)
	}
	return a
}
