package decision

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func TestAggregate(t *testing.T) {
	s := NewStore(StoreConfig{Capacity: 100, AllowedCapacity: 100})
	at := func(m, sec int) time.Time {
		return t0.Add(time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
	}
	src1 := netip.MustParseAddrPort("10.0.0.1:1000")
	src2 := netip.MustParseAddrPort("10.0.0.2:2000")
	for i, d := range []*Decision{
		{Time: at(0, 5), Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Host: "ok.test", Port: 443, Source: src1},
		{Time: at(0, 10), Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: "bad.test", Port: 443, Source: src1},
		{Time: at(0, 50), Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: "bad.test", Port: 443, Source: src2},
		// minute 1 is empty
		{Time: at(2, 0), Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonNotInRegistry, Host: "bad.test", Port: 443, Source: src2, Identity: "spiffe://c/ns/a/sa/b"},
		{Time: at(2, 30), Verdict: vocab.VerdictDeny, Reason: vocab.ReasonPolicyDenied, Host: "other.test", Layer: vocab.LayerDNS, Source: src2},
		{Time: at(3, 59), Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowAny, Host: "any.test", Port: 80, Source: src1},
	} {
		d.ID = uint64(i + 1)
		s.Consume(d)
	}

	t.Run("whole store", func(t *testing.T) {
		got := s.Aggregate(Query{}, 2)
		want := Aggregates{
			From:      at(0, 5),
			To:        at(3, 59),
			Total:     6,
			ByVerdict: map[vocab.Verdict]int{vocab.VerdictAllow: 2, vocab.VerdictDeny: 3, vocab.VerdictAuditDeny: 1},
			ByReason: []Count{
				{Key: string(vocab.ReasonNotInRegistry), Count: 3, LastSeen: at(2, 0)},
				{Key: string(vocab.ReasonAllowAny), Count: 1, LastSeen: at(3, 59)},
				{Key: string(vocab.ReasonAllowed), Count: 1, LastSeen: at(0, 5)},
				{Key: string(vocab.ReasonPolicyDenied), Count: 1, LastSeen: at(2, 30)},
			},
			TopDestinations: []Count{
				{Key: "bad.test:443", Count: 3, LastSeen: at(2, 0)},
				{Key: "other.test", Count: 1, LastSeen: at(2, 30)},
			},
			TopSources: []Count{
				{Key: "10.0.0.2", Count: 2, LastSeen: at(2, 30)},
				{Key: "10.0.0.1", Count: 1, LastSeen: at(0, 10)},
			},
			PerMinute: []Bucket{
				{Start: at(0, 0), Allow: 1, Deny: 2},
				{Start: at(1, 0)},
				{Start: at(2, 0), Deny: 1, AuditDeny: 1},
				{Start: at(3, 0), Allow: 1},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Aggregates (-want +got):\n%s", diff)
		}
	})

	t.Run("query window", func(t *testing.T) {
		q := Query{Since: at(1, 30), Until: at(3, 0), Verdicts: []vocab.Verdict{vocab.VerdictDeny, vocab.VerdictAuditDeny}}
		got := s.Aggregate(q, 10)
		want := Aggregates{
			From:      at(1, 30),
			To:        at(3, 0),
			Total:     2,
			ByVerdict: map[vocab.Verdict]int{vocab.VerdictAllow: 0, vocab.VerdictDeny: 1, vocab.VerdictAuditDeny: 1},
			ByReason: []Count{
				{Key: string(vocab.ReasonNotInRegistry), Count: 1, LastSeen: at(2, 0)},
				{Key: string(vocab.ReasonPolicyDenied), Count: 1, LastSeen: at(2, 30)},
			},
			TopDestinations: []Count{
				{Key: "bad.test:443", Count: 1, LastSeen: at(2, 0)},
				{Key: "other.test", Count: 1, LastSeen: at(2, 30)},
			},
			TopSources: []Count{
				{Key: "10.0.0.2", Count: 1, LastSeen: at(2, 30)},
				{Key: "spiffe://c/ns/a/sa/b", Count: 1, LastSeen: at(2, 0)},
			},
			// Until is exclusive: 12:03 gets no bucket.
			PerMinute: []Bucket{{Start: at(1, 0)}, {Start: at(2, 0), Deny: 1, AuditDeny: 1}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Aggregates (-want +got):\n%s", diff)
		}
	})

	t.Run("nothing matches", func(t *testing.T) {
		got := s.Aggregate(Query{Host: "none.test"}, 0)
		if got.Total != 0 || !got.From.IsZero() || len(got.PerMinute) != 0 || got.PerMinute == nil || got.TopSources == nil {
			t.Errorf("empty aggregate: %+v (want zero window and empty, non-nil slices)", got)
		}
	})
}

// TestAggregateCountsSummaries: a summary of n requests counts n, in the
// total, by verdict, by reason and per minute.
func TestAggregateCountsSummaries(t *testing.T) {
	s := NewStore(StoreConfig{Capacity: 10, AllowedCapacity: 10})
	summary := dec(1, vocab.VerdictAllow, "a.test")
	summary.Count = 30
	s.Consume(summary)
	s.Consume(dec(2, vocab.VerdictDeny, "b.test"))
	a := s.Aggregate(Query{}, 5)
	if a.Total != 31 || a.ByVerdict[vocab.VerdictAllow] != 30 || a.ByVerdict[vocab.VerdictDeny] != 1 {
		t.Errorf("total %d, by verdict %v", a.Total, a.ByVerdict)
	}
	if len(a.PerMinute) == 0 || a.PerMinute[0].Allow != 30 {
		t.Errorf("per minute %+v", a.PerMinute)
	}
	for _, c := range a.ByReason {
		if c.Key == string(vocab.ReasonAllowed) && c.Count != 30 {
			t.Errorf("by reason %+v", a.ByReason)
		}
	}
}

func TestAggregateCoverage(t *testing.T) {
	// The denied ring holds 3: after 5 denials the store no longer knows
	// about the first two, so a window reaching back further is cut.
	s := NewStore(StoreConfig{Capacity: 3, AllowedCapacity: 10})
	for i := range 5 {
		d := dec(uint64(i+1), vocab.VerdictDeny, "x.test")
		d.Time = t0.Add(time.Duration(i) * time.Minute)
		s.Consume(d)
	}
	a := dec(6, vocab.VerdictAllow, "x.test")
	a.Time = t0
	s.Consume(a)

	q := Query{Since: t0.Add(-time.Hour), Until: t0.Add(10 * time.Minute)}
	if got, want := s.Aggregate(q, 0).From, t0.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("From = %v, want %v (oldest denial still held)", got, want)
	}
	q.Verdicts = []vocab.Verdict{vocab.VerdictAllow} // the allowed ring has evicted nothing
	if got, want := s.Aggregate(q, 0).From, q.Since; !got.Equal(want) {
		t.Errorf("allowed only: From = %v, want %v", got, want)
	}
}

func TestAggregateBucketCap(t *testing.T) {
	s := NewStore(StoreConfig{Capacity: 10, AllowedCapacity: 10})
	old, recent := dec(1, vocab.VerdictDeny, "a.test"), dec(2, vocab.VerdictDeny, "a.test")
	old.Time = t0
	recent.Time = t0.Add(3 * 24 * time.Hour)
	s.Consume(old)
	s.Consume(recent)
	got := s.Aggregate(Query{}, 0)
	if len(got.PerMinute) != MaxBuckets {
		t.Fatalf("%d buckets, want %d", len(got.PerMinute), MaxBuckets)
	}
	last := got.PerMinute[MaxBuckets-1]
	if !last.Start.Equal(recent.Time) || last.Deny != 1 {
		t.Errorf("last bucket %+v, want the newest minute with 1 deny", last)
	}
	if got.Total != 2 {
		t.Errorf("Total %d, want 2 (buckets are capped, totals are not)", got.Total)
	}
}
