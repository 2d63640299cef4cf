package serviceentry

import (
	"strings"
	"testing"

	"github.com/egressd/egressd/internal/testkit"
)

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
	golden := testkit.NewGolden("testdata/invalid")
	for _, in := range testkit.Inputs(t, "testdata/invalid/*.yaml") {
		name, data := in.Name, in.Data
		t.Run(name, func(t *testing.T) {
			c, problems := ParseConfig(in.Path, data)
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
			golden.Check(t, name+".errors.golden", []byte(codedProblemLines(t, problems)))
		})
	}
	golden.Stale(t, "*.errors.golden")
}
