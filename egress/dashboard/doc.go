// Package dashboard is egressd's read-only web dashboard: one embedded page
// (HTML, CSS and JavaScript, no external fetches, for air-gapped clusters)
// that shows what is being denied right now, from which workload, to where
// and why, and what ServiceEntry would fix it.
//
// It sits at the end of the decision pipeline: the page reads the decision
// API (egress/decision: /api/v1/decisions/stream, /api/v1/aggregates,
// /api/v1/chains) and the suggestions (egress/suggest: /api/v1/suggestions)
// from the same admin server; this package adds the page itself, the
// allowlist view (/api/v1/allowlist, built from the current
// *serviceentry.Allowlist without any key material) and the health view
// (/api/v1/health, from a callback). RequireToken optionally protects the
// whole admin server with a bearer token.
package dashboard
