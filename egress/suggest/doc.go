// Package suggest turns recorded denials into ready-to-apply ServiceEntry
// YAML: the last stage of egressd's reporting side, and the first step of
// the way back into the pipeline.
//
//	[]*decision.Decision -> Suggest -> []Suggestion -> YAML -> ServiceEntry YAML
//
// Only denials that a ServiceEntry can fix are used: hosts no ServiceEntry
// lists (not_in_registry), redirects to unlisted hosts and CNAME chains that
// leave the allowlist. Each denial contributes one host, and a port when
// the layer saw one; hosts are merged into one suggestion each, and many
// hosts under one registrable domain into one "*.domain" wildcard.
//
// The package is pure apart from Handler, which serves the suggestions on
// egressd's admin API. YAML checks its own output with serviceentry.Parse,
// so a suggestion is never one egressd itself would refuse.
package suggest
