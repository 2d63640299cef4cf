package testkit

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// update is the -update flag of every test binary that uses golden files:
// rewrite them instead of comparing.
var update = flag.Bool("update", false, "rewrite golden files instead of comparing with them")

// Updating reports whether -update was given.
func Updating() bool { return *update }

// Golden compares a package's outputs with the files under one folder.
// Check each output, then Stale: a file there that no check produced is
// an output of a removed case, and fails the test (-update deletes it).
type Golden struct {
	dir      string
	produced map[string]bool
}

// NewGolden is the golden files under dir (relative to the package).
func NewGolden(dir string) *Golden {
	return &Golden{dir: dir, produced: map[string]bool{}}
}

// Check compares got with the golden file name (under the folder), or
// rewrites it with -update.
func (g *Golden) Check(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join(g.dir, name)
	g.produced[path] = true
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; rerun with -update if the change is intended):\n%s", path, d)
	}
}

// Stale fails on (or, with -update, deletes) the files under the folder
// matching pattern that no Check produced. Call it after every case ran.
func (g *Golden) Stale(t testing.TB, pattern string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(g.dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if g.produced[f] {
			continue
		}
		if *update {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("stale golden file %s: no case produces it (rerun with -update to delete it)", f)
	}
}

// Input is one golden case: a file of the inputs folder.
type Input struct {
	// Name is the file's base name without its extension.
	Name string
	Path string
	Data []byte
}

// Inputs reads every file matching pattern ("testdata/in/*.yaml"), in
// name order, failing the test when there is none.
func Inputs(t testing.TB, pattern string) []Input {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden inputs match %s: %v", pattern, err)
	}
	out := make([]Input, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(p)
		out = append(out, Input{Name: strings.TrimSuffix(base, filepath.Ext(base)), Path: p, Data: data})
	}
	return out
}

// ProtoYAML renders messages as YAML documents, each after a "---" line,
// through protojson: the golden form of Envoy resources.
func ProtoYAML[M proto.Message](t testing.TB, ms []M) []byte {
	t.Helper()
	var out []byte
	for _, m := range ms {
		j, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "---\n"...)
		out = append(out, y...)
	}
	return out
}
