// Package redirect follows HTTP redirect chains through the gateway: a 3xx
// response's Location and the request that follows it from the same
// source become hops of one chain, and a Location that points at a host no
// ServiceEntry allows is reported at once, before the client follows it.
package redirect

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Linker is the chain state machine. It is not safe for concurrent use;
// Tracker serialises it.
type Linker struct {
	// TTL is how long a Location waits for the client to follow it.
	TTL time.Duration
	// MaxPending bounds the Locations waiting; the oldest go first.
	MaxPending int
	// Allowlist returns the current allowlist (may return nil: nothing is
	// allowed).
	Allowlist func() *serviceentry.Allowlist
	// Outbound decides the verdict of a hop to an unlisted host.
	Outbound serviceentry.OutboundMode

	pending    map[pendingKey]*pending
	chains     uint64
	prefix     string
	lastExpiry time.Time
}

// pendingKey is a Location the client may follow: its source and host.
type pendingKey struct {
	source netip.Addr
	host   string
}

type pending struct {
	chain   *chain
	hop     int // the hop the next request to the host becomes
	expires time.Time
}

type chain struct {
	id   string
	hops []decision.Hop
}

// NewLinker returns a Linker; prefix makes its chain ids unique across
// processes.
func NewLinker(prefix string, ttl time.Duration, maxPending int, allowlist func() *serviceentry.Allowlist, outbound serviceentry.OutboundMode) *Linker {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	if maxPending <= 0 {
		maxPending = 10000
	}
	if allowlist == nil {
		allowlist = func() *serviceentry.Allowlist { return nil }
	}
	return &Linker{TTL: ttl, MaxPending: maxPending, Allowlist: allowlist, Outbound: outbound,
		pending: map[pendingKey]*pending{}, prefix: prefix}
}

// Link takes one gateway decision, in start-time order, and returns what to
// publish: d itself, with Chain set when it is a hop of a chain, followed
// by one more decision when d is a redirect to a host no ServiceEntry
// allows. now is the current time, for expiry.
func (l *Linker) Link(d *decision.Decision, now time.Time) []*decision.Decision {
	l.expire(now)
	out := []*decision.Decision{d}
	if !d.Source.IsValid() || d.Host == "" {
		return out
	}
	key := pendingKey{d.Source.Addr(), d.Host}
	var c *chain
	hop := 0
	if p, ok := l.pending[key]; ok {
		delete(l.pending, key)
		if !now.After(p.expires) {
			c, hop = p.chain, p.hop
		}
	}
	self := hopOf(d)
	location, next, isRedirect := l.redirectTarget(d)
	if c == nil && !isRedirect {
		return out
	}
	if c == nil {
		l.chains++
		c = &chain{id: fmt.Sprintf("%s%d", l.prefix, l.chains)}
	}
	// The observed hop replaces the one predicted from the Location.
	c.hops = append(c.hops[:hop:hop], self)
	d.Chain = &decision.Chain{ID: c.id, Hop: hop, Hops: clone(c.hops)}
	if !isRedirect {
		return out
	}
	c.hops = append(c.hops, next)
	l.pending[pendingKey{d.Source.Addr(), next.Host}] = &pending{chain: c, hop: hop + 1, expires: now.Add(l.TTL)}
	l.bound()
	if next.Verdict == vocab.VerdictAllow {
		return out
	}
	port, _ := strconv.ParseUint(location.Port(), 10, 32)
	out = append(out, &decision.Decision{
		Time:     d.Time,
		Layer:    vocab.LayerHTTP,
		Verdict:  next.Verdict,
		Reason:   next.Reason,
		Source:   d.Source,
		Identity: d.Identity,
		Host:     next.Host,
		Port:     uint32(port),
		Protocol: strings.ToUpper(location.Scheme),
		Location: next.URL,
		Detail:   fmt.Sprintf("%s answered %d with Location %s; no ServiceEntry allows %s", self.URL, d.Status, next.URL, location.Host),
		Chain:    &decision.Chain{ID: c.id, Hop: hop + 1, Hops: clone(c.hops)},
	})
	return out
}

// redirectTarget returns the hop a 3xx response points to, judged against
// the allowlist.
func (l *Linker) redirectTarget(d *decision.Decision) (*url.URL, decision.Hop, bool) {
	if d.Layer != vocab.LayerHTTP || d.Status < 300 || d.Status > 399 || d.Location == "" {
		return nil, decision.Hop{}, false
	}
	base := requestURL(d)
	ref, err := url.Parse(d.Location)
	if err != nil {
		return nil, decision.Hop{}, false
	}
	u := base.ResolveReference(ref)
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, decision.Hop{}, false
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port, _ := strconv.ParseUint(u.Port(), 10, 32)
	hop := decision.Hop{URL: displayURL(u), Host: host, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	if _, _, ok := l.Allowlist().MatchPort(host, uint32(port)); !ok {
		hop.Reason = vocab.ReasonRedirectUnlisted
		switch l.Outbound {
		case serviceentry.AllowAny:
			hop.Reason = vocab.ReasonAllowAny
		case serviceentry.Audit:
			hop.Verdict = vocab.VerdictAuditDeny
		default:
			hop.Verdict = vocab.VerdictDeny
		}
	}
	return u, hop, true
}

// hopOf describes d as a hop.
func hopOf(d *decision.Decision) decision.Hop {
	return decision.Hop{URL: displayURL(requestURL(d)), Host: d.Host, Status: d.Status, Verdict: d.Verdict, Reason: d.Reason}
}

// requestURL is the URL d requested, as well as the gateway knows it: TLS
// passthrough has no path.
func requestURL(d *decision.Decision) *url.URL {
	scheme := "http"
	if d.Layer == vocab.LayerTLS {
		scheme = "https"
	}
	host := d.Host
	if d.Port != 0 {
		host = net.JoinHostPort(d.Host, strconv.FormatUint(uint64(d.Port), 10))
	}
	u := &url.URL{Scheme: scheme, Host: host, Path: "/"}
	if d.Path != "" {
		if p, err := url.ParseRequestURI(d.Path); err == nil {
			u.Path, u.RawPath, u.RawQuery = p.Path, p.RawPath, p.RawQuery
		}
	}
	return u
}

// displayURL drops the scheme's default port.
func displayURL(u *url.URL) string {
	c := *u
	if (c.Scheme == "http" && c.Port() == "80") || (c.Scheme == "https" && c.Port() == "443") {
		c.Host = c.Hostname()
		if strings.Contains(c.Host, ":") {
			c.Host = "[" + c.Host + "]"
		}
	}
	return c.String()
}

func clone(h []decision.Hop) []decision.Hop { return append([]decision.Hop(nil), h...) }

// expire forgets the Locations nobody followed in time; at most once a
// second, so a busy gateway does not scan the map on every decision.
func (l *Linker) expire(now time.Time) {
	if now.Sub(l.lastExpiry) < time.Second {
		return
	}
	l.lastExpiry = now
	for k, p := range l.pending {
		if now.After(p.expires) {
			delete(l.pending, k)
		}
	}
}

// bound drops the Locations that expire first while too many wait.
func (l *Linker) bound() {
	for len(l.pending) > l.MaxPending {
		var oldest pendingKey
		var at time.Time
		for k, p := range l.pending {
			if at.IsZero() || p.expires.Before(at) {
				oldest, at = k, p.expires
			}
		}
		delete(l.pending, oldest)
	}
}
