package dnsproxy

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Decision is one recorded DNS decision: a refusal, an answer whose CNAME
// chain leaves the allowlist, or addresses dropped by the rebinding guard.
// It carries the fields of egressd's decision event that the DNS layer
// knows.
type Decision struct {
	// Time is when the query was received.
	Time time.Time
	// Layer is always "dns".
	Layer vocab.Layer
	// Source is the client's address.
	Source netip.AddrPort
	// Host is the query name, lower case, without the trailing dot.
	Host string
	// QType is the query type ("A", "AAAA", "TXT", ...).
	QType string
	// Verdict is vocab.VerdictAllow (the query was answered), vocab.VerdictDeny or
	// vocab.VerdictAuditDeny (answered under AUDIT, refused under REGISTRY_ONLY).
	Verdict vocab.Verdict
	// Reason is one of the Reason* constants.
	Reason vocab.Reason
	// ServiceEntry is "namespace/name" of the ServiceEntry that allows the
	// host, when one does.
	ServiceEntry string
	// Detail says more: the CNAME chain, the blocked addresses, the
	// upstream error.
	Detail string
}

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
	d.Layer = vocab.LayerDNS
	if s.cfg.OnDecision != nil {
		s.cfg.OnDecision(d)
		return
	}
	if ce := s.decisionLog.Check(zap.InfoLevel, "dns decision"); ce != nil {
		var buf [7]zap.Field
		fields := append(buf[:0],
			zap.String(keyVerdict, string(d.Verdict)),
			zap.String(keyReason, string(d.Reason)),
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
