package testkit

import "testing"

// Target reports a benchmark's performance target as met or missed. It
// never fails the benchmark: targets are reported, with ratios, in
// docs/benchmarks.md, not asserted on a machine of unknown speed.
func Target(b *testing.B, what string, met bool) {
	b.Helper()
	verdict := "met"
	if !met {
		verdict = "MISSED (see docs/benchmarks.md)"
	}
	b.Logf("target %s: %s", what, verdict)
}
