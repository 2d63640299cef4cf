package dnsproxy

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache bounds.
const (
	// maxCacheTTL caps how long a positive answer is kept.
	maxCacheTTL = time.Hour
	// maxNegativeTTL caps how long NXDOMAIN and NODATA answers are kept
	// (RFC 2308: the SOA's TTL and MINIMUM, the lower of the two).
	maxNegativeTTL = 60 * time.Second
)

// cacheKey identifies one cached upstream answer.
type cacheKey struct {
	name   string // canonical
	qtype  uint16
	qclass uint16
	do, cd bool
}

type cacheItem struct {
	key     cacheKey
	msg     *dns.Msg // never modified once stored
	stored  time.Time
	expires time.Time
}

// cache is a bounded LRU of upstream answers that expire with their TTL.
// Stored messages are shared and read-only: readers copy before changing.
type cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front: most recently used
	m   map[cacheKey]*list.Element
	now func() time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), m: map[cacheKey]*list.Element{}, now: time.Now}
}

// get returns the cached answer for k and how long ago it was stored.
func (c *cache) get(k cacheKey) (*dns.Msg, time.Duration, bool) {
	if c == nil {
		return nil, 0, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, 0, false
	}
	it := e.Value.(*cacheItem)
	if !now.Before(it.expires) {
		c.ll.Remove(e)
		delete(c.m, k)
		return nil, 0, false
	}
	c.ll.MoveToFront(e)
	return it.msg, now.Sub(it.stored), true
}

// put stores m under k for ttl, evicting the least recently used entries
// beyond the bound.
func (c *cache) put(k cacheKey, m *dns.Msg, ttl time.Duration) {
	if c == nil || ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	it := &cacheItem{key: k, msg: m, stored: now, expires: now.Add(ttl)}
	if e, ok := c.m[k]; ok {
		e.Value = it
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(it)
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*cacheItem).key)
	}
}

// len returns the number of cached answers (expired ones included until
// they are looked up or evicted).
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// cacheTTL returns how long m may be cached: the lowest TTL of its answer
// records (capped at maxCacheTTL) for a positive answer; the SOA's TTL and
// MINIMUM, the lower, capped at maxNegativeTTL, for NXDOMAIN and NODATA.
// Anything else (errors, truncated answers, negative answers without SOA)
// is not cached.
func cacheTTL(m *dns.Msg) time.Duration {
	if m.Truncated {
		return 0
	}
	switch m.Rcode {
	case dns.RcodeSuccess:
		if len(m.Answer) > 0 {
			low := uint32(maxCacheTTL / time.Second)
			for _, rr := range m.Answer {
				if ttl := rr.Header().Ttl; ttl < low {
					low = ttl
				}
			}
			return time.Duration(low) * time.Second
		}
	case dns.RcodeNameError:
	default:
		return 0
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(soa.Hdr.Ttl, soa.Minttl)
			return min(time.Duration(ttl)*time.Second, maxNegativeTTL)
		}
	}
	return 0
}

// ageTTLs lowers every TTL of m (a copy) by age, not below zero.
func ageTTLs(m *dns.Msg, age time.Duration) {
	sec := uint32(age / time.Second)
	if sec == 0 {
		return
	}
	for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range s {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > sec {
				h.Ttl -= sec
			} else {
				h.Ttl = 0
			}
		}
	}
}
