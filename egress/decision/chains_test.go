package decision

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// chainFixture stores two redirect chains and an unrelated decision.
//
// Chain "r1": a.test 301 -> b.test 302 -> c.test, where c.test is
// unlisted. Hop 1 was decided twice (allow, then audit-deny by another
// listener); hop 2 is known from hop 1's Location and from its own deny.
// Hop 3 (d.test) is only named in the last decision's Chain.Hops.
//
// Chain "r2": one allowed hop, newer than r1.
func chainFixture() *Store {
	s := NewStore(StoreConfig{Capacity: 100, AllowedCapacity: 100})
	src := netip.MustParseAddrPort("10.0.0.5:40000")
	hopA := Hop{URL: "http://a.test/", Host: "a.test", Status: 301, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	hopB := Hop{URL: "http://b.test/x", Host: "b.test", Status: 302, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	hopC := Hop{URL: "http://c.test/", Host: "c.test", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted}
	hopD := Hop{URL: "http://d.test/", Host: "d.test", Status: 0, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	for i, d := range []*Decision{
		{Time: at(0), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Source: src, Host: "a.test", Status: 301,
			Chain: &Chain{ID: "r1", Hop: 0, Hops: []Hop{hopA}}},
		{Time: at(1), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Source: src, Host: "b.test", Status: 302,
			Chain: &Chain{ID: "r1", Hop: 1, Hops: []Hop{hopA, hopB}}},
		{Time: at(2), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Source: src, Host: "unrelated.test"},
		{Time: at(3), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonPolicyDenied, Source: src, Host: "b.test",
			Chain: &Chain{ID: "r1", Hop: 1, Hops: []Hop{hopA, hopB}}},
		{Time: at(4), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted, Source: src, Host: "c.test",
			Chain: &Chain{ID: "r1", Hop: 2, Hops: []Hop{hopA, hopB, hopC, hopD}}},
		{Time: at(10), Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, Source: netip.MustParseAddrPort("10.0.0.6:1"), Host: "z.test", Status: 200,
			Chain: &Chain{ID: "r2", Hop: 0, Hops: []Hop{{URL: "http://z.test/", Host: "z.test", Status: 200, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}}}},
	} {
		d.ID = uint64(i + 1)
		s.Consume(d)
	}
	return s
}

var (
	wantR1 = ChainView{
		ID: "r1", Source: "10.0.0.5", Start: t0, End: t0.Add(4 * time.Second), Denied: true,
		Hops: []HopView{
			{Hop: 0, URL: "http://a.test/", Host: "a.test", Status: 301, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, DecisionIDs: []uint64{1}},
			{Hop: 1, URL: "http://b.test/x", Host: "b.test", Status: 302, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonPolicyDenied, DecisionIDs: []uint64{2, 4}},
			{Hop: 2, URL: "http://c.test/", Host: "c.test", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted, DecisionIDs: []uint64{5}},
			{Hop: 3, URL: "http://d.test/", Host: "d.test", Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, DecisionIDs: []uint64{}},
		},
	}
	wantR2 = ChainView{
		ID: "r2", Source: "10.0.0.6", Start: t0.Add(10 * time.Second), End: t0.Add(10 * time.Second),
		Hops: []HopView{{Hop: 0, URL: "http://z.test/", Host: "z.test", Status: 200, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, DecisionIDs: []uint64{6}}},
	}
)

func TestChains(t *testing.T) {
	s := chainFixture()
	tests := map[string]struct {
		q    Query
		want []ChainView
	}{
		"all, newest first": {Query{}, []ChainView{wantR2, wantR1}},
		"limit":             {Query{Limit: 1}, []ChainView{wantR2}},
		"one chain":         {Query{ChainID: "r1"}, []ChainView{wantR1}},
		// A chain with any matching decision is shown whole.
		"denied chains": {Query{Verdicts: []vocab.Verdict{vocab.VerdictDeny}}, []ChainView{wantR1}},
		"by hop host":   {Query{Host: "a.test"}, []ChainView{wantR1}},
		"no match":      {Query{Host: "unrelated.test"}, []ChainView{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, s.Chains(tc.q)); diff != "" {
				t.Errorf("Chains (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChainsHopKnownOnlyFromOthers(t *testing.T) {
	// Hop 0's own decision was evicted (or never stored): the view takes
	// it from hop 1's Chain.Hops.
	s := NewStore(StoreConfig{Capacity: 10, AllowedCapacity: 10})
	s.Consume(&Decision{ID: 9, Time: t0, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted, Host: "b.test",
		Chain: &Chain{ID: "r", Hop: 1, Hops: []Hop{
			{URL: "http://a.test/", Host: "a.test", Status: 308, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonNotInRegistry},
			{URL: "http://b.test/", Host: "b.test", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted},
		}}})
	got := s.Chains(Query{})
	want := []ChainView{{
		ID: "r", Start: t0, End: t0, Denied: true,
		Hops: []HopView{
			{Hop: 0, URL: "http://a.test/", Host: "a.test", Status: 308, Verdict: vocab.VerdictAuditDeny, Reason: vocab.ReasonNotInRegistry, DecisionIDs: []uint64{}},
			{Hop: 1, URL: "http://b.test/", Host: "b.test", Verdict: vocab.VerdictDeny, Reason: vocab.ReasonRedirectUnlisted, DecisionIDs: []uint64{9}},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Chains (-want +got):\n%s", diff)
	}
}
