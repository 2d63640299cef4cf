package decision

import (
	"cmp"
	"slices"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// ChainView is one redirect chain assembled from its stored decisions.
type ChainView struct {
	// ID is the chain's ID.
	ID string `json:"id"`
	// Source is the client's IP (of the first hop when it is stored).
	Source string `json:"source"`
	// Start and End are the times of the chain's first and last stored
	// decisions.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Denied reports whether any hop was denied or audit-denied.
	Denied bool `json:"denied"`
	// Hops are the chain's known hops in order.
	Hops []HopView `json:"hops"`
}

// HopView is one hop of a ChainView.
type HopView struct {
	// Hop is the hop's index in the chain, from 0.
	Hop int `json:"hop"`
	// URL and Host are the hop's URL and host.
	URL  string `json:"url"`
	Host string `json:"host"`
	// Status is the hop's HTTP response status; 0 when it was not
	// requested (or no status is known).
	Status int `json:"status,omitempty"`
	// Verdict and Reason are the hop's worst decision.
	Verdict vocab.Verdict `json:"verdict"`
	Reason  vocab.Reason  `json:"reason"`
	// DecisionIDs are the IDs of the stored decisions made for this hop,
	// oldest first; empty for a hop known only from a later hop's chain.
	DecisionIDs []uint64 `json:"decision_ids"`
}

// Chains groups the stored decisions that belong to a redirect chain by
// Chain.ID. A chain is returned when any of its decisions matches q
// (Limit aside), and then shows all its stored decisions. Hops are
// ordered by Chain.Hop. A hop's verdict is the worst of its own decisions
// (deny > audit-deny > allow) and its Status the response status one of
// them observed; a hop with no decision of its own (a Location not
// followed yet, or an evicted decision) takes URL, Host, Status and
// verdict from the Chain.Hops of the chain's other decisions. Newest
// chain first, at most q.Limit chains.
func (s *Store) Chains(q Query) []ChainView {
	m := q.compile()
	limit := s.limit(q.Limit)
	groups := map[string]*chainGroup{}
	var order []*chainGroup // newest first

	s.mu.RLock()
	s.each(func(e entry) bool {
		d := e.d
		if d.Chain == nil {
			return true
		}
		g := groups[d.Chain.ID]
		if g == nil {
			g = &chainGroup{id: d.Chain.ID}
			groups[g.id] = g
			order = append(order, g)
		}
		g.decisions = append(g.decisions, d)
		g.matched = g.matched || m.match(d)
		return true
	})
	s.mu.RUnlock()

	out := []ChainView{}
	for _, g := range order {
		if len(out) == limit {
			break
		}
		if g.matched {
			out = append(out, g.view())
		}
	}
	return out
}

// chainGroup is one chain's stored decisions, newest first.
type chainGroup struct {
	id        string
	decisions []*Decision
	matched   bool
}

// hopAcc gathers what is known about one hop: from its own decisions
// (own*) and from other decisions' Chain.Hops (rec*).
type hopAcc struct {
	view       HopView
	own        bool
	ownVerdict vocab.Verdict
	ownReason  vocab.Reason
	ownStatus  int
	recVerdict vocab.Verdict
	recReason  vocab.Reason
	recStatus  int
}

// view assembles the chain.
func (g *chainGroup) view() ChainView {
	v := ChainView{ID: g.id}
	hops := map[int]*hopAcc{}
	get := func(i int) *hopAcc {
		h := hops[i]
		if h == nil {
			h = &hopAcc{view: HopView{Hop: i, DecisionIDs: []uint64{}}}
			hops[i] = h
		}
		return h
	}
	sourceHop := -1
	for _, d := range slices.Backward(g.decisions) { // oldest first
		c := d.Chain
		if v.Start.IsZero() || d.Time.Before(v.Start) {
			v.Start = d.Time
		}
		if d.Time.After(v.End) {
			v.End = d.Time
		}
		if d.Source.IsValid() && (sourceHop < 0 || c.Hop < sourceHop) {
			v.Source, sourceHop = d.Source.Addr().Unmap().String(), c.Hop
		}

		h := get(c.Hop)
		h.view.DecisionIDs = append(h.view.DecisionIDs, d.ID)
		if !h.own || worse(d.Verdict, h.ownVerdict) {
			h.ownVerdict, h.ownReason = d.Verdict, d.Reason
		}
		h.own = true
		if h.ownStatus == 0 {
			h.ownStatus = d.Status
		}
		if h.view.Host == "" {
			h.view.Host = d.Host
		}
		for i, rec := range c.Hops {
			r := get(i)
			if r.view.URL == "" {
				r.view.URL = rec.URL
			}
			if r.view.Host == "" {
				r.view.Host = rec.Host
			}
			if r.recVerdict == "" || worse(rec.Verdict, r.recVerdict) {
				r.recVerdict, r.recReason = rec.Verdict, rec.Reason
			}
			if rec.Status != 0 {
				r.recStatus = rec.Status
			}
		}
	}

	v.Hops = make([]HopView, 0, len(hops))
	for _, h := range hops {
		hv := h.view
		hv.Verdict, hv.Reason, hv.Status = h.recVerdict, h.recReason, h.recStatus
		if h.own {
			hv.Verdict, hv.Reason = h.ownVerdict, h.ownReason
			if h.ownStatus != 0 {
				hv.Status = h.ownStatus
			}
		}
		v.Denied = v.Denied || hv.Verdict == vocab.VerdictDeny || hv.Verdict == vocab.VerdictAuditDeny
		v.Hops = append(v.Hops, hv)
	}
	slices.SortFunc(v.Hops, func(a, b HopView) int { return cmp.Compare(a.Hop, b.Hop) })
	v.Start, v.End = v.Start.UTC(), v.End.UTC()
	return v
}

// worse reports whether verdict a is worse than b: deny > audit-deny >
// allow > anything else.
func worse(a, b vocab.Verdict) bool { return verdictRank(a) > verdictRank(b) }

func verdictRank(v vocab.Verdict) int {
	switch v {
	case vocab.VerdictDeny:
		return 3
	case vocab.VerdictAuditDeny:
		return 2
	case vocab.VerdictAllow:
		return 1
	}
	return 0
}
