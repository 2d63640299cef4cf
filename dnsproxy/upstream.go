package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// ednsSize is the UDP payload size the proxy advertises to clients and the
// largest it asks upstreams for (the DNS flag day 2020 value is 1232; 4096
// is the classic EDNS default and what most clients send).
const (
	ednsSize        = 1232
	maxUpstreamSize = dns.DefaultMsgSize
)

// errNoUpstream is returned when no upstream is configured.
var errNoUpstream = errors.New("no upstream resolvers configured")

// forwarder sends queries to the upstreams in order, with failover,
// truncation retry over TCP, a response cache and one in-flight request per
// distinct question.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	udp, tcp  *dns.Client
	cache     *cache
	flight    singleflight.Group
	m         *metrics
}

// newForwarder returns a forwarder using cache (nil: no caching).
func newForwarder(c *config, cache *cache, m *metrics) *forwarder {
	return &forwarder{
		upstreams: c.upstreams,
		timeout:   c.Timeout,
		udp:       &dns.Client{Net: "udp", UDPSize: maxUpstreamSize},
		tcp:       &dns.Client{Net: "tcp"},
		cache:     cache,
		m:         m,
	}
}

// upstreamQuery is one question as the proxy asks it upstream.
type upstreamQuery struct {
	q       dns.Question // name canonical
	edns    bool         // the client sent EDNS0
	udpSize uint16       // the client's UDP payload size (when edns)
	do, cd  bool
}

// resolve returns the upstream answer for uq, from the cache when it holds
// one, and its age. The message is shared: callers copy it before changing
// it.
func (f *forwarder) resolve(ctx context.Context, uq upstreamQuery) (*dns.Msg, time.Duration, error) {
	key := cacheKey{name: uq.q.Name, qtype: uq.q.Qtype, qclass: uq.q.Qclass, do: uq.do, cd: uq.cd}
	if m, age, ok := f.cache.get(key); ok {
		f.m.cache.WithLabelValues("hit").Inc()
		return m, age, nil
	}
	if f.cache != nil {
		f.m.cache.WithLabelValues("miss").Inc()
	}
	flightKey := uq.q.Name + "|" + strconv.Itoa(int(uq.q.Qtype)) + "|" + strconv.Itoa(int(uq.q.Qclass)) +
		"|" + strconv.FormatBool(uq.do) + strconv.FormatBool(uq.cd)
	v, err, _ := f.flight.Do(flightKey, func() (any, error) {
		m, err := f.exchange(ctx, uq)
		if err != nil {
			return nil, err
		}
		f.cache.put(key, m, cacheTTL(m))
		return m, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return v.(*dns.Msg), 0, nil
}

// exchange asks each upstream in order until one answers. A truncated UDP
// answer is asked again over TCP at the same upstream. Errors, timeouts,
// SERVFAIL and REFUSED move on to the next upstream.
func (f *forwarder) exchange(ctx context.Context, uq upstreamQuery) (*dns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, errNoUpstream
	}
	var errs []string
	for _, addr := range f.upstreams {
		m, err := f.exchangeOne(ctx, uq, addr)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("every upstream failed: %s", strings.Join(errs, "; "))
}

func (f *forwarder) exchangeOne(ctx context.Context, uq upstreamQuery, addr string) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.Id = dns.Id()
	req.RecursionDesired = true
	req.CheckingDisabled = uq.cd
	req.Question = []dns.Question{uq.q}
	if uq.edns {
		size := min(max(uq.udpSize, dns.MinMsgSize), maxUpstreamSize)
		req.SetEdns0(size, uq.do)
	}
	m, err := f.try(ctx, f.udp, "udp", req, addr)
	if err != nil {
		return nil, err
	}
	if m.Truncated {
		req.Id = dns.Id()
		if m, err = f.try(ctx, f.tcp, "tcp", req, addr); err != nil {
			return nil, fmt.Errorf("%w (after a truncated udp answer)", err)
		}
	}
	switch m.Rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused:
		return nil, fmt.Errorf("%s: %s", addr, dns.RcodeToString[m.Rcode])
	}
	return m, nil
}

// try is one attempt at one upstream over one transport.
func (f *forwarder) try(ctx context.Context, c *dns.Client, transport string, req *dns.Msg, addr string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	m, _, err := c.ExchangeContext(ctx, req, addr)
	if err != nil {
		f.m.upstream.WithLabelValues(transport, "error").Inc()
		return nil, fmt.Errorf("%s over %s: %w", addr, transport, err)
	}
	q := req.Question[0]
	if !m.Response || len(m.Question) != 1 || m.Question[0].Qtype != q.Qtype || m.Question[0].Qclass != q.Qclass ||
		!strings.EqualFold(m.Question[0].Name, q.Name) {
		f.m.upstream.WithLabelValues(transport, "error").Inc()
		return nil, fmt.Errorf("%s over %s: the answer does not match the question", addr, transport)
	}
	switch {
	case m.Truncated:
		f.m.upstream.WithLabelValues(transport, "truncated").Inc()
	case m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused:
		f.m.upstream.WithLabelValues(transport, "servfail").Inc()
	default:
		f.m.upstream.WithLabelValues(transport, "ok").Inc()
	}
	return m, nil
}
