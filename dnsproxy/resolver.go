package dnsproxy

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// resolve answers one of the gateway's own lookups (ModeResolver). The
// gateway asks for the names of its DNS clusters (hosts and endpoint
// names, written with a trailing dot so that no search domain or hosts
// file gets in the way) and for the Host or SNI its dynamic forward proxy
// forwards to. Every address of the answer is checked by the guard; the
// gateway gets only the ones it may connect to.
func (s *Server) resolve(rq *request, snap *snapshot) *dns.Msg {
	qt := rq.q.Qtype
	if qt != dns.TypeA && qt != dns.TypeAAAA {
		// The gateway only ever asks for addresses.
		return s.plain(rq, dns.RcodeRefused)
	}
	key := strings.TrimSuffix(rq.name, ".")
	forwards := s.cfg.Outbound.Forwards()
	if ip, err := netip.ParseAddr(key); err == nil {
		// The SNI forward proxy asks for "<SNI>.", so an SNI that is an
		// address comes here too, instead of being connected to as is.
		if !forwards {
			rq.reason = vocab.ReasonNotInRegistry
			return s.plain(rq, dns.RcodeRefused)
		}
		return s.resolveAddress(rq, key, ip)
	}
	var plan *hostPlan
	if strings.IndexByte(rq.name, '\\') < 0 {
		if h := snap.allow.Match(rq.name); h != nil {
			plan = snap.plans[h]
		} else {
			plan = snap.endpoints[rq.name]
		}
	}
	if plan == nil {
		if !forwards {
			// No cluster of the gateway needs this name (a cluster of the
			// previous allowlist, still resolving): nothing to hand out.
			rq.reason = vocab.ReasonNotInRegistry
			return s.plain(rq, dns.RcodeRefused)
		}
		plan = &hostPlan{source: sourceUpstream}
	}
	up, age, err := s.fwd.resolve(s.baseContext(), s.upstreamQuery(rq))
	if err != nil {
		// The gateway keeps the addresses it had: it never gets an
		// unchecked one.
		rq.verdict, rq.reason = vocab.VerdictDeny, vocab.ReasonUpstreamError
		s.log.Debug("gateway lookup failed upstream", zap.String(keyHost, key), zap.Error(err))
		return s.failure(rq, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, textNoUpstream)
	}
	resp := s.fromUpstream(rq, up, age)
	rq.verdict, rq.reason = vocab.VerdictAllow, vocab.ReasonAllowed
	res := guard(resp, qt, s.cfg.Guard, plan.listed)
	s.note(key, plan.entry, res)
	if len(res.dropped) > 0 {
		rq.reason = vocab.ReasonBlockedAddress
		if res.kept == 0 {
			rq.verdict = vocab.VerdictDeny
			// NOERROR without addresses, rather than a failure: a DNS
			// cluster then drops the addresses it held (a name that
			// rebinds to a blocked address loses the old ones too).
			resp.Rcode = dns.RcodeSuccess
		}
	}
	return resp
}

// resolveAddress answers a lookup of an address written as a name: the
// address itself when the guard allows it, else nothing.
func (s *Server) resolveAddress(rq *request, key string, ip netip.Addr) *dns.Msg {
	v := s.cfg.Guard.Check(ip, nil)
	res := guardResult{}
	if !v.Allowed {
		res.dropped = []netguard.Verdict{v}
		rq.verdict, rq.reason = vocab.VerdictDeny, vocab.ReasonBlockedAddress
		s.note(key, "", res)
		return s.reply(rq, nil)
	}
	rq.verdict, rq.reason = vocab.VerdictAllow, vocab.ReasonAllowAny
	ip = ip.Unmap()
	var rrs []dns.RR
	hdr := dns.RR_Header{Name: rq.q.Name, Rrtype: rq.q.Qtype, Class: dns.ClassINET, Ttl: answerTTL}
	switch {
	case rq.q.Qtype == dns.TypeA && ip.Is4():
		rrs = []dns.RR{&dns.A{Hdr: hdr, A: ip.AsSlice()}}
	case rq.q.Qtype == dns.TypeAAAA && ip.Is6():
		rrs = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}}
	}
	res.kept = len(rrs)
	s.note(key, "", res)
	return s.reply(rq, rrs)
}

// note tells the ledger what the guard did to one lookup: a refusal is
// remembered; a name that kept its addresses and lost none is forgotten.
// An answer without any addresses (a NODATA for AAAA) changes nothing.
func (s *Server) note(name, entry string, res guardResult) {
	switch {
	case len(res.dropped) > 0:
		s.cfg.Ledger.Refuse(netguard.Refusal{Name: name, Refused: res.dropped, Kept: res.kept, ServiceEntry: entry, At: time.Now()})
		if ce := s.log.Check(zap.DebugLevel, "gateway lookup refused addresses"); ce != nil {
			ce.Write(zap.String(keyHost, name), zap.String(keyDetail, res.droppedList()), zap.Int("kept", res.kept))
		}
	case res.kept > 0:
		s.cfg.Ledger.Resolved(name)
	}
}
