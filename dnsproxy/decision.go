package dnsproxy

import (
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// Decision is one recorded DNS decision: a refusal, an answer whose CNAME
// chain leaves the allowlist, or addresses dropped by the rebinding guard.
// It carries the fields of egressd's decision event that the DNS layer
// knows.
type Decision struct {
	// Time is when the query was received.
	Time time.Time
	// Layer is always "dns".
	Layer string
	// Source is the client's address.
	Source netip.AddrPort
	// Host is the query name, lower case, without the trailing dot.
	Host string
	// QType is the query type ("A", "AAAA", "TXT", ...).
	QType string
	// Verdict is VerdictAllow (the query was answered), VerdictDeny or
	// VerdictAuditDeny (answered under AUDIT, refused under REGISTRY_ONLY).
	Verdict string
	// Reason is one of the Reason* constants.
	Reason string
	// ServiceEntry is "namespace/name" of the ServiceEntry that allows the
	// host, when one does.
	ServiceEntry string
	// Detail says more: the CNAME chain, the blocked addresses, the
	// upstream error.
	Detail string
}

// LayerDNS is the Layer of every Decision of this package.
const LayerDNS = "dns"

// Verdicts.
const (
	VerdictAllow     = "allow"
	VerdictDeny      = "deny"
	VerdictAuditDeny = "audit-deny"
)

// Reasons: a small fixed set, also used as metric label values.
const (
	// ReasonAllowed: the name is allowed by a ServiceEntry and answered.
	ReasonAllowed = "allowed"
	// ReasonPassthrough: the name is in a pass-through zone and forwarded.
	ReasonPassthrough = "passthrough"
	// ReasonAllowAny: the name is unlisted but forwarded under ALLOW_ANY.
	ReasonAllowAny = "allow_any"
	// ReasonNotInRegistry: no ServiceEntry lists the name (REGISTRY_ONLY).
	ReasonNotInRegistry = "not_in_registry"
	// ReasonCNAMEToUnlisted: an allowed name's upstream answer is a CNAME
	// chain that leads to a name no ServiceEntry lists. It is answered.
	ReasonCNAMEToUnlisted = "cname_to_unlisted_host"
	// ReasonBlockedAddress: the rebinding guard dropped upstream addresses.
	// When it dropped every address the query is refused.
	ReasonBlockedAddress = "blocked_address"
	// ReasonUpstreamError: no upstream answered; the client gets SERVFAIL.
	ReasonUpstreamError = "upstream_error"
	// ReasonNotReady: no allowlist yet; the client gets SERVFAIL, never an
	// unchecked answer.
	ReasonNotReady = "not_ready"
	// ReasonMalformed: the query itself is refused (not a query, no or
	// several questions, a zone transfer, a class other than IN).
	ReasonMalformed = "malformed"
)

// Log field keys, shared with the rest of egressd.
const (
	keyVerdict      = "verdict"
	keyReason       = "reason"
	keyHost         = "host"
	keyQType        = "qtype"
	keySource       = "source"
	keyServiceEntry = "serviceentry"
	keyDetail       = "detail"
	keyLayer        = "layer"
)

// record hands d to the OnDecision hook, which must not block (egressd
// puts it on its decision stream, whose consumers write the log line off
// the query path). Without a hook, d is logged here.
func (s *Server) record(d Decision) {
	d.Layer = LayerDNS
	if s.cfg.OnDecision != nil {
		s.cfg.OnDecision(d)
		return
	}
	if ce := s.decisionLog.Check(zap.InfoLevel, "dns decision"); ce != nil {
		var buf [7]zap.Field
		fields := append(buf[:0],
			zap.String(keyVerdict, d.Verdict),
			zap.String(keyReason, d.Reason),
			zap.String(keyHost, d.Host),
			zap.String(keyQType, d.QType),
			zap.String(keySource, d.Source.String()),
		)
		if d.ServiceEntry != "" {
			fields = append(fields, zap.String(keyServiceEntry, d.ServiceEntry))
		}
		if d.Detail != "" {
			fields = append(fields, zap.String(keyDetail, d.Detail))
		}
		ce.Write(fields...)
	}
}
