package decision

import (
	"cmp"
	"slices"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Aggregate defaults and bounds.
const (
	// DefaultTop is how many destinations and sources Aggregate returns
	// when asked for top <= 0.
	DefaultTop = 10
	// MaxBuckets bounds Aggregates.PerMinute: one day of minutes.
	MaxBuckets = 24 * 60
)

// Aggregates summarises the stored decisions matching a query.
type Aggregates struct {
	// From and To are the window actually covered: From is the query's
	// Since, moved later when the store has already evicted decisions
	// of that time, or the oldest matching decision's time when Since is
	// not set; To is the query's Until, or the newest matching decision's
	// time when Until is not set. Both are zero when nothing matched and
	// the query set no bounds.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Total counts what the matching decisions stand for: a summary of n
	// allowed requests counts n (Decision.Requests), as in ByVerdict,
	// ByReason and PerMinute.
	Total int `json:"total"`
	// ByVerdict counts them by verdict; every Verdict* constant is
	// present.
	ByVerdict map[vocab.Verdict]int `json:"by_verdict"`
	// ByReason counts them by reason, most frequent first, ties by key.
	ByReason []Count `json:"by_reason"`
	// TopDestinations are the destinations (host:port, or host for DNS)
	// with the most deny and audit-deny decisions.
	TopDestinations []Count `json:"top_destinations"`
	// TopSources are the callers (Identity when known, else source IP)
	// with the most deny and audit-deny decisions.
	TopSources []Count `json:"top_sources"`
	// PerMinute has one bucket per minute of the window, oldest first,
	// empty minutes included; at most MaxBuckets, the newest ones.
	PerMinute []Bucket `json:"per_minute"`
}

// Count is how often a key occurred, and when last.
type Count struct {
	Key      string    `json:"key"`
	Count    int       `json:"count"`
	LastSeen time.Time `json:"last_seen"`
}

// Bucket counts the decisions of one minute by verdict.
type Bucket struct {
	Start     time.Time `json:"start"`
	Allow     int       `json:"allow"`
	Deny      int       `json:"deny"`
	AuditDeny int       `json:"audit_deny"`
}

// Aggregate summarises the stored decisions matching q (q.Limit is
// ignored); top bounds TopDestinations and TopSources (DefaultTop when
// <= 0).
func (s *Store) Aggregate(q Query, top int) Aggregates {
	if top <= 0 {
		top = DefaultTop
	}
	m := q.compile()
	a := Aggregates{ByVerdict: map[vocab.Verdict]int{}}
	for _, v := range vocab.Verdicts() {
		a.ByVerdict[v] = 0
	}
	byReason, byDest, bySource := counter{}, counter{}, counter{}
	var matched []*Decision

	s.mu.RLock()
	coverage := s.coverage(q)
	s.each(func(e entry) bool {
		d := e.d
		if !m.match(d) {
			return true
		}
		matched = append(matched, d)
		n := int(d.Requests())
		a.Total += n
		a.ByVerdict[d.Verdict] += n
		byReason.addN(string(d.Reason), d.Time, n)
		if d.Denied() {
			byDest.add(destinationKey(d), d.Time)
			if k := sourceKey(d); k != "" {
				bySource.add(k, d.Time)
			}
		}
		return true
	})
	s.mu.RUnlock()

	a.ByReason = byReason.sorted(len(byReason))
	a.TopDestinations = byDest.sorted(top)
	a.TopSources = bySource.sorted(top)
	a.From, a.To = window(q, coverage, matched)
	a.PerMinute = perMinute(a.From, a.To, !q.Until.IsZero(), matched)
	return a
}

// coverage returns the time of the oldest decision still held by a ring
// that has evicted decisions q could match: before it, the store no
// longer knows everything. Zero when no such ring has evicted anything.
// s.mu must be held.
func (s *Store) coverage(q Query) time.Time {
	var t time.Time
	wantDenied := len(q.Verdicts) == 0 || slices.Contains(q.Verdicts, vocab.VerdictDeny) || slices.Contains(q.Verdicts, vocab.VerdictAuditDeny)
	wantAllowed := len(q.Verdicts) == 0 || slices.ContainsFunc(q.Verdicts, func(v vocab.Verdict) bool { return !v.Denied() })
	for _, r := range []struct {
		ring *ring
		want bool
	}{{&s.denied, wantDenied}, {&s.allowed, wantAllowed}} {
		if r.want && r.ring.evicted {
			if oldest := r.ring.at(r.ring.n - 1).d.Time; oldest.After(t) {
				t = oldest
			}
		}
	}
	return t
}

// window returns the Aggregates' From and To.
func window(q Query, coverage time.Time, matched []*Decision) (from, to time.Time) {
	var oldest, newest time.Time
	for _, d := range matched {
		if oldest.IsZero() || d.Time.Before(oldest) {
			oldest = d.Time
		}
		if d.Time.After(newest) {
			newest = d.Time
		}
	}
	from, to = q.Since, q.Until
	switch {
	case from.IsZero():
		from = oldest
	case coverage.After(from):
		from = coverage
	}
	if to.IsZero() {
		to = newest
	}
	return from.UTC(), to.UTC()
}

// perMinute buckets matched by minute from from to to. When toExclusive,
// a to on a minute boundary does not open a bucket of its own.
func perMinute(from, to time.Time, toExclusive bool, matched []*Decision) []Bucket {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return []Bucket{}
	}
	start, end := from.Truncate(time.Minute), to.Truncate(time.Minute)
	n := int(end.Sub(start)/time.Minute) + 1
	if toExclusive && end.Equal(to) && n > 1 {
		n--
	}
	if n > MaxBuckets {
		start = start.Add(time.Duration(n-MaxBuckets) * time.Minute)
		n = MaxBuckets
	}
	buckets := make([]Bucket, n)
	for i := range buckets {
		buckets[i].Start = start.Add(time.Duration(i) * time.Minute)
	}
	for _, d := range matched {
		if d.Time.Before(start) {
			continue
		}
		i := int(d.Time.Sub(start) / time.Minute)
		if i >= n {
			continue
		}
		n := int(d.Requests())
		switch d.Verdict {
		case vocab.VerdictAllow:
			buckets[i].Allow += n
		case vocab.VerdictDeny:
			buckets[i].Deny += n
		case vocab.VerdictAuditDeny:
			buckets[i].AuditDeny += n
		}
	}
	return buckets
}

// counter counts keys with their latest time.
type counter map[string]*Count

func (c counter) add(key string, t time.Time) { c.addN(key, t, 1) }

// addN counts n for key at t.
func (c counter) addN(key string, t time.Time, n int) {
	e := c[key]
	if e == nil {
		e = &Count{Key: key}
		c[key] = e
	}
	e.Count += n
	if t.After(e.LastSeen) {
		e.LastSeen = t
	}
}

// sorted returns up to n counts, largest first, ties by key.
func (c counter) sorted(n int) []Count {
	out := make([]Count, 0, len(c))
	for _, e := range c {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Count) int {
		if r := cmp.Compare(b.Count, a.Count); r != 0 {
			return r
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out[:min(n, len(out))]
}
