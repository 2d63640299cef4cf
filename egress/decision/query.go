package decision

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// DefaultQueryLimit is Query.Limit when it is 0.
const DefaultQueryLimit = 100

// Query selects decisions. The zero Query matches every decision.
type Query struct {
	// Verdicts, Layers and Reasons each list the values accepted; empty
	// accepts any.
	Verdicts []vocab.Verdict
	Layers   []vocab.Layer
	Reasons  []vocab.Reason
	// Source selects the client: an address ("10.0.0.1"), an address and
	// port ("10.0.0.1:5000") or a CIDR prefix ("10.0.0.0/8"). A value
	// that is none of these matches nothing.
	Source string
	// Host selects the requested host, case-insensitively and ignoring a
	// trailing dot: exactly, or any subdomain with "*.suffix" (not the
	// suffix itself, as in ServiceEntry hosts), or as a substring with a
	// leading "~" ("~example"). Decisions without a Host are matched on
	// their Destination.
	Host string
	// ServiceEntry selects the matching ServiceEntry, "namespace/name".
	ServiceEntry string
	// ChainID selects the hops of one redirect chain.
	ChainID string
	// Since (inclusive) and Until (exclusive) bound the decision time;
	// zero is unbounded.
	Since, Until time.Time
	// AfterID keeps only decisions with an ID above it.
	AfterID uint64
	// Limit is the most decisions returned; DefaultQueryLimit when 0,
	// and never more than the store holds.
	Limit int
}

// Match reports whether d satisfies every condition of q (Limit aside).
// It compiles q on each call; the Store compiles a query once per call.
func (q Query) Match(d *Decision) bool { return q.compile().match(d) }

// matcher is a Query compiled for matching many decisions.
type matcher struct {
	q      Query
	source func(netip.AddrPort) bool // nil: any
	host   func(string) bool         // nil: any
}

// compile prepares q's source and host conditions.
func (q Query) compile() *matcher {
	m := &matcher{q: q}
	if q.Source != "" {
		m.source, _ = parseSource(q.Source)
	}
	if q.Host != "" {
		m.host = hostMatcher(q.Host)
	}
	return m
}

func (m *matcher) match(d *Decision) bool {
	q := &m.q
	switch {
	case q.AfterID != 0 && d.ID <= q.AfterID,
		len(q.Verdicts) > 0 && !slices.Contains(q.Verdicts, d.Verdict),
		len(q.Layers) > 0 && !slices.Contains(q.Layers, d.Layer),
		len(q.Reasons) > 0 && !slices.Contains(q.Reasons, d.Reason),
		q.ServiceEntry != "" && d.ServiceEntry != q.ServiceEntry,
		q.ChainID != "" && (d.Chain == nil || d.Chain.ID != q.ChainID),
		!q.Since.IsZero() && d.Time.Before(q.Since),
		!q.Until.IsZero() && !d.Time.Before(q.Until),
		m.source != nil && !m.source(d.Source):
		return false
	}
	if m.host != nil {
		h := d.Host
		if h == "" {
			h = hostOf(d.Destination)
		}
		if !m.host(normalizeHost(h)) {
			return false
		}
	}
	return true
}

// parseSource compiles an address, address:port or prefix. An invalid
// value yields a matcher that matches nothing, and ok false.
func parseSource(v string) (f func(netip.AddrPort) bool, ok bool) {
	if a, err := netip.ParseAddr(v); err == nil {
		a = a.Unmap()
		return func(s netip.AddrPort) bool { return s.IsValid() && s.Addr().Unmap() == a }, true
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		a, port := ap.Addr().Unmap(), ap.Port()
		return func(s netip.AddrPort) bool {
			return s.IsValid() && s.Addr().Unmap() == a && s.Port() == port
		}, true
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		p = p.Masked()
		return func(s netip.AddrPort) bool { return s.IsValid() && p.Contains(s.Addr().Unmap()) }, true
	}
	return func(netip.AddrPort) bool { return false }, false
}

// hostMatcher compiles a Query.Host value.
func hostMatcher(v string) func(string) bool {
	switch {
	case strings.HasPrefix(v, "~"):
		sub := strings.ToLower(v[1:])
		return func(h string) bool { return strings.Contains(h, sub) }
	case strings.HasPrefix(v, "*."):
		suffix := normalizeHost(v[1:]) // ".example.com"
		return func(h string) bool { return strings.HasSuffix(h, suffix) }
	default:
		want := normalizeHost(v)
		return func(h string) bool { return h == want }
	}
}

// normalizeHost lowercases h and drops a trailing dot.
func normalizeHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// hostOf returns the host part of an address that may carry a port.
func hostOf(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String()
	}
	return addr
}

// Query returns the stored decisions matching q, newest first, at most
// q.Limit.
func (s *Store) Query(q Query) []*Decision {
	m := q.compile()
	limit := s.limit(q.Limit)
	var out []*Decision
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.each(func(e entry) bool {
		if s.ordered && e.d.ID <= q.AfterID {
			return false // all older decisions have lower IDs too
		}
		if m.match(e.d) {
			out = append(out, e.d)
		}
		return len(out) < limit
	})
	return out
}

// limit resolves a Query.Limit.
func (s *Store) limit(l int) int {
	if l <= 0 {
		l = DefaultQueryLimit
	}
	return min(l, s.capacity())
}
