// Package vocab is egressd's one vocabulary: the layers, verdicts and
// reasons of every decision, and the wire formats of the names the
// gateway's configuration and its access logs share (clusters, filter
// chains), each with its parser. Every part (the DNS proxy, the xDS
// translation, the access-log intake, the decision stream, the dashboard)
// uses these and declares none of its own. It is a leaf: it imports
// nothing of egressd's.
package vocab

import (
	"slices"
)

// Layer is where a decision was made.
type Layer string

// Layers.
const (
	LayerDNS  Layer = "dns"
	LayerHTTP Layer = "http"
	LayerTLS  Layer = "tls"
	LayerTCP  Layer = "tcp"
)

// Verdict is what happened to the traffic.
type Verdict string

// Verdicts.
const (
	// VerdictAllow: the traffic went through.
	VerdictAllow Verdict = "allow"
	// VerdictDeny: the traffic was refused (or could not be completed, see
	// ReasonUpstreamError and ReasonTLSOriginationFailed).
	VerdictDeny Verdict = "deny"
	// VerdictAuditDeny: the traffic went through under the AUDIT outbound
	// mode, but REGISTRY_ONLY would have refused it.
	VerdictAuditDeny Verdict = "audit-deny"
)

// Reason says why: a small fixed set, also used as metric label values.
type Reason string

// Reasons.
const (
	ReasonAllowed              Reason = "allowed"                   // a ServiceEntry allows it
	ReasonAllowAny             Reason = "allow_any"                 // unlisted, allowed by ALLOW_ANY
	ReasonPassthrough          Reason = "passthrough"               // a DNS pass-through zone
	ReasonNotInRegistry        Reason = "not_in_registry"           // no ServiceEntry lists the host (on that port)
	ReasonNoSNI                Reason = "no_sni"                    // TLS without a server name
	ReasonUnidentifiedTCP      Reason = "unidentified_tcp"          // plaintext TCP without Host, SNI or listed address
	ReasonPolicyDenied         Reason = "policy_denied"             // an AuthorizationPolicy refused the caller
	ReasonNotExported          Reason = "not_exported"              // the entry's exportTo leaves the caller's namespace out
	ReasonSidecarScope         Reason = "sidecar_scope"             // the caller namespace's Sidecar does not list the host
	ReasonTLSOriginationFailed Reason = "tls_origination_failed"    // TLS to the upstream failed, or cannot be originated
	ReasonUpstreamError        Reason = "upstream_error"            // no upstream connection (refused, timeout, DNS)
	ReasonRedirectUnlisted     Reason = "redirect_to_unlisted_host" // a 3xx Location no ServiceEntry allows
	ReasonCNAMEToUnlisted      Reason = "cname_to_unlisted_host"    // a DNS answer's CNAME chain leaves the allowlist
	ReasonBlockedAddress       Reason = "blocked_address"           // the address guard refused the destination's address
	ReasonForwardingLoop       Reason = "forwarding_loop"           // the destination is the gateway itself
	ReasonNotReady             Reason = "not_ready"                 // no allowlist loaded yet
	ReasonMalformed            Reason = "malformed"                 // a DNS query or HTTP request too broken to decide on
)

var (
	layers   = []Layer{LayerDNS, LayerHTTP, LayerTLS, LayerTCP}
	verdicts = []Verdict{VerdictAllow, VerdictDeny, VerdictAuditDeny}
	reasons  = []Reason{
		ReasonAllowed, ReasonAllowAny, ReasonPassthrough, ReasonNotInRegistry,
		ReasonNoSNI, ReasonUnidentifiedTCP, ReasonPolicyDenied, ReasonNotExported, ReasonSidecarScope, ReasonTLSOriginationFailed,
		ReasonUpstreamError, ReasonRedirectUnlisted, ReasonCNAMEToUnlisted,
		ReasonBlockedAddress, ReasonForwardingLoop, ReasonNotReady, ReasonMalformed,
	}
)

// Layers lists every layer.
func Layers() []Layer { return slices.Clone(layers) }

// Verdicts lists every verdict.
func Verdicts() []Verdict { return slices.Clone(verdicts) }

// Reasons lists every reason.
func Reasons() []Reason { return slices.Clone(reasons) }

// Valid reports whether l is one of the layers.
func (l Layer) Valid() bool { return slices.Contains(layers, l) }

// Valid reports whether v is one of the verdicts.
func (v Verdict) Valid() bool { return slices.Contains(verdicts, v) }

// Valid reports whether r is one of the reasons.
func (r Reason) Valid() bool { return slices.Contains(reasons, r) }

// Denied reports whether v refused, or under AUDIT would have refused.
func (v Verdict) Denied() bool { return v == VerdictDeny || v == VerdictAuditDeny }

// ParseLayer returns the layer named s, false when none is.
func ParseLayer(s string) (Layer, bool) { return parse(layers, s) }

// ParseVerdict returns the verdict named s, false when none is.
func ParseVerdict(s string) (Verdict, bool) { return parse(verdicts, s) }

// ParseReason returns the reason named s, false when none is.
func ParseReason(s string) (Reason, bool) { return parse(reasons, s) }

func parse[T ~string](set []T, s string) (T, bool) {
	if v := T(s); slices.Contains(set, v) {
		return v, true
	}
	return "", false
}

// Strings returns vs as plain strings, for flag help and label lists.
func Strings[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
