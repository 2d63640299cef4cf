package serviceentry

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update rewrites the golden files of every test in this package that has
// them. It is declared once here; other test files use it.
var update = flag.Bool("update", false, "rewrite golden files")

// checkGolden compares got with the golden file at path, or rewrites the
// file when -update is set.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./serviceentry/ -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// removeStaleGolden fails on (or, with -update, deletes) the files matching
// pattern that no test case produced.
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
		t.Errorf("stale golden file %s (run go test ./serviceentry/ -update to delete it)", f)
	}
}

// problemLines formats problems one a line as "severity: file:line: ...".
func problemLines(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(string(p.Severity) + ": " + p.Error() + "\n")
	}
	return b.String()
}

// codedProblemLines formats problems one a line as "severity Code:
// file:line: ...", for golden files. Every problem must have a code.
func codedProblemLines(t *testing.T, ps []Problem) string {
	t.Helper()
	var b strings.Builder
	for _, p := range ps {
		if p.Code == "" {
			t.Errorf("problem without a code: %v", p)
		}
		b.WriteString(string(p.Severity) + " " + string(p.Code) + ": " + p.Error() + "\n")
	}
	return b.String()
}

// TestInvalidGolden: testdata/invalid/<case>.yaml ->
// testdata/invalid/<case>.errors.golden, every problem that decoding and
// validating the file finds, with its code. No case may yield an Entry or
// a valid Rule, AuthorizationPolicy or PeerAuthentication.
// Regenerate with `go test ./serviceentry/ -run InvalidGolden -update`.
func TestInvalidGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	produced := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		golden := filepath.Join("testdata/invalid", name+".errors.golden")
		produced[golden] = true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, problems := ParseConfig(in, data)
			valid := 0
			for _, r := range c.Rules {
				if r.Invalid == "" {
					valid++
				}
			}
			for _, p := range c.AuthorizationPolicies {
				if p.Invalid == "" {
					valid++
				}
			}
			valid += len(c.PeerAuthentications)
			if len(c.Entries) != 0 || valid != 0 {
				t.Errorf("got %d entries and %d valid rules and policies, want none", len(c.Entries), valid)
			}
			if !hasError(problems) {
				t.Errorf("no error found")
			}
			checkGolden(t, golden, []byte(codedProblemLines(t, problems)))
		})
	}
	removeStaleGolden(t, "testdata/invalid/*.errors.golden", produced)
}
