package decision

import "slices"

// layers, verdicts and reasons list every value of the Layer*, Verdict*
// and Reason* constants: the only values queries accept and metrics use.
var (
	layers   = []string{LayerDNS, LayerHTTP, LayerTLS, LayerTCP}
	verdicts = []string{VerdictAllow, VerdictDeny, VerdictAuditDeny}
	reasons  = []string{
		ReasonAllowed, ReasonAllowAny, ReasonPassthrough, ReasonNotInRegistry,
		ReasonNoSNI, ReasonUnidentifiedTCP, ReasonPolicyDenied, ReasonTLSOriginationFailed,
		ReasonUpstreamError, ReasonRedirectUnlisted, ReasonCNAMEToUnlisted,
		ReasonBlockedAddress, ReasonForwardingLoop, ReasonNotReady, ReasonMalformed,
	}
)

// labelUnknown replaces a label value outside its fixed set, so a
// publisher's mistake cannot grow the number of series.
const labelUnknown = "unknown"

// known returns v when set lists it, else labelUnknown.
func known(set []string, v string) string {
	if slices.Contains(set, v) {
		return v
	}
	return labelUnknown
}

// Valid reports whether layer, verdict and reason are each one of their
// constants: a decision from outside (an access log entry) that is not is
// refused rather than recorded.
func Valid(layer, verdict, reason string) bool {
	return slices.Contains(layers, layer) && slices.Contains(verdicts, verdict) && slices.Contains(reasons, reason)
}
