package suggest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// update rewrites the golden files: go test ./egress/suggest/ -update
var update = flag.Bool("update", false, "rewrite golden files")

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
	inputs, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	produced := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		outYAML := filepath.Join("testdata/out", name+".yaml")
		outJSON := filepath.Join("testdata/out", name+".json")
		produced[outYAML], produced[outJSON] = true, true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var g goldenInput
			if err := yaml.UnmarshalStrict(data, &g); err != nil {
				t.Fatalf("%s: %v", in, err)
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
			checkGolden(t, outYAML, y)
			checkGolden(t, outJSON, append(j, '\n'))
		})
	}
	removeStaleGolden(t, "testdata/out/*", produced)
}

// mustAllowlist compiles ServiceEntry YAML, failing on any error problem.
func mustAllowlist(t *testing.T, src string) *serviceentry.Allowlist {
	t.Helper()
	entries, problems := serviceentry.Parse("allowlist.yaml", []byte(src))
	a := serviceentry.Compile(entries, problems)
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError {
			t.Fatalf("allowlist: %v", p)
		}
	}
	return a
}

// checkGolden compares got with the golden file at path, or rewrites it
// with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./egress/suggest/ -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

// removeStaleGolden fails on (or, with -update, deletes) the files
// matching pattern that no case produced.
func removeStaleGolden(t *testing.T, pattern string, produced map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if produced[f] {
			continue
		}
		if *update {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("stale golden file %s (run go test ./egress/suggest/ -update to delete it)", f)
	}
}
