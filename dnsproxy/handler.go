package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// answerTTL is the TTL of synthesised answers (gateway, static and VIP
// addresses): short, so that an allowlist change reaches clients quickly.
const answerTTL = 30

// EDE extra texts: short, stable, without the query name.
const (
	textNotInRegistry = "egressd: host not in the egress registry"
	textBlockedAddr   = "egressd: answer address in a blocked range"
	textNoUpstream    = "egressd: no upstream resolver answered"
	textNotReady      = "egressd: allowlist not loaded yet"
)

// request is one query being answered.
type request struct {
	w     dns.ResponseWriter
	r     *dns.Msg
	start time.Time
	q     dns.Question // the client's question, as sent
	name  string       // q.Name, canonical (lower case, fully qualified)
	opt   *dns.OPT     // the client's OPT record, if any
	udp   bool
	// verdict and reason of the answer, for metrics.
	verdict vocab.Verdict
	reason  vocab.Reason
}

// source returns the client's address.
func (rq *request) source() netip.AddrPort {
	if rq.w == nil {
		return netip.AddrPort{}
	}
	return addrPort(rq.w.RemoteAddr())
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// decision starts a Decision about rq.
func (rq *request) decision(verdict vocab.Verdict, reason vocab.Reason) Decision {
	return Decision{
		Time:    rq.start,
		Layer:   vocab.LayerDNS,
		Source:  rq.source(),
		Host:    strings.TrimSuffix(rq.name, "."),
		QType:   dns.TypeToString[rq.q.Qtype],
		Verdict: verdict,
		Reason:  reason,
	}
}

// ServeDNS answers one query. It always writes exactly one reply and never
// panics on any message a client can send.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	rq := &request{w: w, r: r, start: time.Now(), verdict: vocab.VerdictDeny, reason: vocab.ReasonMalformed}
	if w != nil {
		if la := w.LocalAddr(); la != nil {
			rq.udp = la.Network() == "udp"
		}
	}
	resp := s.answer(rq)
	// Counted before the reply leaves, so a client that has its answer
	// also finds it counted.
	s.metrics.count(rq.verdict, rq.reason)
	s.write(rq, resp)
	s.metrics.observe(rq.verdict, time.Since(rq.start))
}

// answer decides and builds the reply to rq.
func (s *Server) answer(rq *request) *dns.Msg {
	r := rq.r
	if r == nil {
		m := new(dns.Msg)
		m.Response = true
		m.Rcode = dns.RcodeFormatError
		return m
	}
	rq.opt = r.IsEdns0()
	switch {
	case r.Response:
		return s.plain(rq, dns.RcodeFormatError)
	case r.Opcode != dns.OpcodeQuery:
		return s.plain(rq, dns.RcodeNotImplemented)
	case len(r.Question) != 1:
		return s.plain(rq, dns.RcodeFormatError)
	}
	rq.q = r.Question[0]
	if rq.opt != nil && rq.opt.Version() != 0 {
		// RFC 6891 section 6.1.3: only version 0 exists.
		return s.plain(rq, dns.RcodeBadVers)
	}
	switch {
	case rq.q.Qclass != dns.ClassINET:
		return s.plain(rq, dns.RcodeRefused)
	case rq.q.Qtype == dns.TypeAXFR || rq.q.Qtype == dns.TypeIXFR:
		return s.plain(rq, dns.RcodeRefused)
	case rq.q.Qtype == dns.TypeOPT || rq.q.Qtype == dns.TypeTSIG || rq.q.Qtype == dns.TypeTKEY:
		return s.plain(rq, dns.RcodeFormatError)
	}
	rq.name = dns.CanonicalName(rq.q.Name)
	resolver := s.cfg.Mode == ModeResolver
	if !resolver && s.passthrough(rq.name) {
		return s.forwardUnchanged(rq, vocab.ReasonPassthrough)
	}
	snap := s.snap.Load()
	if snap == nil {
		// Fail closed: never answer a name that cannot be checked.
		rq.reason = vocab.ReasonNotReady
		if !resolver {
			s.record(rq.decision(vocab.VerdictDeny, vocab.ReasonNotReady))
		}
		return s.failure(rq, dns.RcodeServerFailure, dns.ExtendedErrorCodeNotReady, textNotReady)
	}
	if resolver {
		return s.resolve(rq, snap)
	}
	// Names with escapes (a "." or a non-LDH byte inside a label) are never
	// host names; matching their presentation form by suffix could let
	// "x.a\.b.example.com." pass for "*.b.example.com".
	var plan *hostPlan
	var host *serviceentry.Host
	if strings.IndexByte(rq.name, '\\') < 0 {
		if host = snap.allow.Match(rq.name); host != nil {
			plan = snap.plans[host]
		}
	}
	if plan != nil && s.cfg.CallerNamespace != nil {
		if reason, detail, audit := s.scope(rq, snap, host); reason != "" {
			if audit {
				d := rq.decision(vocab.VerdictAuditDeny, reason)
				d.Detail, d.ServiceEntry = detail+" (audited: answered)", plan.entry
				s.record(d)
				return s.answerAllowed(rq, snap, plan)
			}
			rq.reason = reason
			d := rq.decision(vocab.VerdictDeny, reason)
			d.Detail, d.ServiceEntry = detail, plan.entry
			s.record(d)
			return s.failure(rq, s.cfg.RefuseRcode, dns.ExtendedErrorCodeBlocked, "egressd: "+detail)
		}
	}
	if plan == nil {
		switch s.cfg.Outbound {
		case serviceentry.AllowAny:
			return s.forwardUnchanged(rq, vocab.ReasonAllowAny)
		case serviceentry.Audit:
			// Answered like ALLOW_ANY, recorded as what REGISTRY_ONLY
			// would have refused.
			s.record(rq.decision(vocab.VerdictAuditDeny, vocab.ReasonNotInRegistry))
			return s.forwardUnchanged(rq, vocab.ReasonNotInRegistry)
		}
		rq.reason = vocab.ReasonNotInRegistry
		s.record(rq.decision(vocab.VerdictDeny, vocab.ReasonNotInRegistry))
		return s.failure(rq, s.cfg.RefuseRcode, dns.ExtendedErrorCodeBlocked, textNotInRegistry)
	}
	return s.answerAllowed(rq, snap, plan)
}

// scope says why the caller's namespace may not reach host ("" when it
// may, or when the caller's namespace is unknown): no entry of the host is
// exported to it, or its Sidecar lists none of them; audit when the
// namespace's scope is only audited.
func (s *Server) scope(rq *request, snap *snapshot, host *serviceentry.Host) (reason vocab.Reason, detail string, audit bool) {
	src := rq.source()
	if !src.IsValid() {
		return "", "", false
	}
	ns, ok := s.cfg.CallerNamespace(src.Addr().Unmap())
	if !ok {
		return "", "", false
	}
	r, detail := snap.allow.ReachableHost(ns, s.cfg.RootNamespace, strings.TrimSuffix(rq.name, "."), host, 0)
	reason = vocab.Reason(r)
	// Only the namespace's own lockdown (its Sidecar) is dry-run; other
	// teams' exportTo is enforced.
	return reason, detail, reason == vocab.ReasonSidecarScope && (slices.Contains(s.cfg.AuditNamespaces, ns) || slices.Contains(snap.allow.AuditNamespaces(), ns))
}

// passthrough reports whether name is in a pass-through zone.
func (s *Server) passthrough(name string) bool {
	escaped := strings.IndexByte(name, '\\') >= 0
	for _, z := range s.cfg.zones {
		if escaped {
			if dns.IsSubDomain(z, name) {
				return true
			}
			continue
		}
		if z == "." || name == z || (strings.HasSuffix(name, z) && name[len(name)-len(z)-1] == '.') {
			return true
		}
	}
	return false
}

// answerAllowed answers a name the allowlist allows.
func (s *Server) answerAllowed(rq *request, snap *snapshot, plan *hostPlan) *dns.Msg {
	rq.verdict, rq.reason = vocab.VerdictAllow, vocab.ReasonAllowed
	qt := rq.q.Qtype
	if qt == dns.TypeHTTPS || qt == dns.TypeSVCB {
		// Service binding records can carry address hints, ECH keys and
		// alternative endpoints that bypass the gateway or the rebinding
		// guard: answer that there are none.
		return s.reply(rq, nil)
	}
	if plan.synthesised() {
		switch qt {
		case dns.TypeA:
			return s.reply(rq, s.addressRRs(rq, plan.v4, nil))
		case dns.TypeAAAA:
			return s.reply(rq, s.addressRRs(rq, nil, plan.v6))
		case dns.TypeANY:
			return s.reply(rq, s.addressRRs(rq, plan.v4, plan.v6))
		case dns.TypeCNAME:
			return s.reply(rq, nil)
		}
	}
	up, age, err := s.fwd.resolve(s.baseContext(), s.upstreamQuery(rq))
	if err != nil {
		return s.upstreamFailed(rq, plan.entry, err)
	}
	resp := s.fromUpstream(rq, up, age)
	if plan.synthesised() {
		// The name's addresses are ours to give; real ones (glue) must not
		// leak, and the name exists even when the upstream does not know it.
		stripAddresses(resp)
		if resp.Rcode == dns.RcodeNameError {
			resp.Rcode = dns.RcodeSuccess
		}
	} else if s.cfg.blockPrivate {
		res := guard(resp, qt, s.cfg.Guard, plan.listed)
		if len(res.dropped) > 0 {
			d := rq.decision(vocab.VerdictAllow, vocab.ReasonBlockedAddress)
			d.ServiceEntry = plan.entry
			d.Detail = "dropped " + res.droppedList()
			if res.kept == 0 && isAddressType(qt) {
				d.Verdict = vocab.VerdictDeny
				rq.verdict, rq.reason = vocab.VerdictDeny, vocab.ReasonBlockedAddress
				s.record(d)
				return s.failure(rq, s.cfg.RefuseRcode, dns.ExtendedErrorCodeBlocked, textBlockedAddr)
			}
			rq.reason = vocab.ReasonBlockedAddress
			s.record(d)
		}
	}
	if chain := cnameChain(resp, rq.name); len(chain) > 1 {
		for _, n := range chain[1:] {
			if strings.IndexByte(n, '\\') >= 0 || snap.allow.Match(n) == nil {
				d := rq.decision(vocab.VerdictAllow, vocab.ReasonCNAMEToUnlisted)
				d.ServiceEntry = plan.entry
				d.Detail = trimDots(chain)
				rq.reason = vocab.ReasonCNAMEToUnlisted
				s.record(d)
				break
			}
		}
	}
	if ce := s.log.Check(zap.DebugLevel, "dns answer"); ce != nil {
		ce.Write(zap.String(keyVerdict, string(rq.verdict)), zap.String(keyReason, string(rq.reason)),
			zap.String(keyHost, rq.name), zap.String(keyQType, dns.TypeToString[qt]))
	}
	return resp
}

func isAddressType(t uint16) bool {
	return t == dns.TypeA || t == dns.TypeAAAA || t == dns.TypeANY
}

func trimDots(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(n, ".")
	}
	return strings.Join(out, " -> ")
}

// addressRRs builds A records for v4 and AAAA records for v6, owned by the
// question's name as the client spelled it.
func (s *Server) addressRRs(rq *request, v4, v6 []net.IP) []dns.RR {
	if len(v4)+len(v6) == 0 {
		return nil
	}
	rrs := make([]dns.RR, 0, len(v4)+len(v6))
	for _, ip := range v4 {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: rq.q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: answerTTL}, A: ip})
	}
	for _, ip := range v6 {
		rrs = append(rrs, &dns.AAAA{Hdr: dns.RR_Header{Name: rq.q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: answerTTL}, AAAA: ip})
	}
	return rrs
}

// forwardUnchanged answers rq from upstream as it is (pass-through zones,
// ALLOW_ANY).
func (s *Server) forwardUnchanged(rq *request, reason vocab.Reason) *dns.Msg {
	up, age, err := s.fwd.resolve(s.baseContext(), s.upstreamQuery(rq))
	if err != nil {
		return s.upstreamFailed(rq, "", err)
	}
	rq.verdict, rq.reason = vocab.VerdictAllow, reason
	if s.cfg.Outbound == serviceentry.Audit && reason == vocab.ReasonNotInRegistry {
		rq.verdict = vocab.VerdictAuditDeny
	}
	if ce := s.log.Check(zap.DebugLevel, "dns answer"); ce != nil {
		ce.Write(zap.String(keyVerdict, string(rq.verdict)), zap.String(keyReason, string(rq.reason)),
			zap.String(keyHost, rq.name), zap.String(keyQType, dns.TypeToString[rq.q.Qtype]))
	}
	return s.fromUpstream(rq, up, age)
}

func (s *Server) upstreamQuery(rq *request) upstreamQuery {
	uq := upstreamQuery{
		q:  dns.Question{Name: rq.name, Qtype: rq.q.Qtype, Qclass: rq.q.Qclass},
		cd: rq.r.CheckingDisabled,
	}
	if rq.opt != nil {
		uq.edns, uq.udpSize, uq.do = true, rq.opt.UDPSize(), rq.opt.Do()
	}
	return uq
}

// upstreamFailed answers SERVFAIL (never an unchecked answer) and records
// the failure.
func (s *Server) upstreamFailed(rq *request, entry string, err error) *dns.Msg {
	rq.verdict, rq.reason = vocab.VerdictDeny, vocab.ReasonUpstreamError
	d := rq.decision(vocab.VerdictDeny, vocab.ReasonUpstreamError)
	d.ServiceEntry = entry
	d.Detail = err.Error()
	s.record(d)
	return s.failure(rq, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, textNoUpstream)
}

// fromUpstream turns a (shared) upstream answer into the reply to rq: a
// copy with the client's id and question, TTLs aged by the time spent in
// the cache, and an OPT record only when the client sent one (carrying the
// upstream's extended errors).
func (s *Server) fromUpstream(rq *request, up *dns.Msg, age time.Duration) *dns.Msg {
	m := up.Copy()
	ageTTLs(m, age)
	m.Id = rq.r.Id
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = rq.r.RecursionDesired
	m.RecursionAvailable = true
	m.Question = []dns.Question{rq.q}
	var upOpt *dns.OPT
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			upOpt = o
			continue
		}
		extra = append(extra, rr)
	}
	m.Extra = extra
	if rq.opt != nil {
		opt := newOPT(rq.opt.Do())
		if upOpt != nil {
			for _, o := range upOpt.Option {
				if o.Option() == dns.EDNS0EDE {
					opt.Option = append(opt.Option, o)
				}
			}
		}
		m.Extra = append(m.Extra, opt)
	} else if m.Rcode > 0xF {
		// An extended rcode cannot be sent without OPT.
		m.Rcode = dns.RcodeServerFailure
	}
	return m
}

func newOPT(do bool) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(ednsSize)
	if do {
		o.SetDo()
	}
	return o
}

// reply is a NOERROR answer with answer records (none: NODATA), answered
// by the proxy itself.
func (s *Server) reply(rq *request, answer []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(rq.r)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer = answer
	if rq.opt != nil {
		m.Extra = []dns.RR{newOPT(rq.opt.Do())}
	}
	return m
}

// plain is a reply with rcode and nothing else (malformed queries). It
// carries an OPT record when the client sent one, as RFC 6891 wants.
func (s *Server) plain(rq *request, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(rq.r, rcode)
	m.RecursionAvailable = true
	if rq.opt != nil || rcode > 0xF {
		m.Extra = []dns.RR{newOPT(rq.opt != nil && rq.opt.Do())}
	}
	return m
}

// failure is a refusal or error reply: rcode, plus an Extended DNS Error
// (RFC 8914) when the client sent EDNS0.
func (s *Server) failure(rq *request, rcode int, ede uint16, text string) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(rq.r, rcode)
	m.RecursionAvailable = true
	if rq.opt != nil {
		m.Extra = []dns.RR{edeOPT(rq.opt.Do(), ede, text)}
	}
	return m
}

// edeOPTs holds one OPT record per (DO bit, EDE code, text): refusals are
// the hot path under a flood of unlisted names, and an OPT record is only
// read once built (packing and Truncate do not modify it), so replies
// share them.
var edeOPTs sync.Map // edeKey -> *dns.OPT

type edeKey struct {
	do   bool
	code uint16
	text string
}

// edeOPT returns the shared OPT record carrying an Extended DNS Error.
func edeOPT(do bool, code uint16, text string) *dns.OPT {
	key := edeKey{do, code, text}
	if o, ok := edeOPTs.Load(key); ok {
		return o.(*dns.OPT)
	}
	o := newOPT(do)
	o.Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: code, ExtraText: text}}
	actual, _ := edeOPTs.LoadOrStore(key, o)
	return actual.(*dns.OPT)
}

// write sends resp, truncated to what the client can receive over UDP. If
// the reply cannot be packed, a bare SERVFAIL goes out instead, so the
// client always gets an answer.
func (s *Server) write(rq *request, resp *dns.Msg) {
	if rq.w == nil {
		return
	}
	if rq.udp {
		size := dns.MinMsgSize
		if rq.opt != nil {
			size = max(int(rq.opt.UDPSize()), dns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := rq.w.WriteMsg(resp); err != nil {
		s.log.Debug("dns reply could not be written; sending SERVFAIL", zap.Error(err))
		bare := new(dns.Msg)
		bare.Response = true
		if rq.r != nil {
			bare.Id = rq.r.Id
			bare.Opcode = rq.r.Opcode
		}
		bare.Rcode = dns.RcodeServerFailure
		_ = rq.w.WriteMsg(bare)
	}
}

func (s *Server) baseContext() context.Context {
	if ctx := s.ctx.Load(); ctx != nil {
		return *ctx
	}
	return context.Background()
}
