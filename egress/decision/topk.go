package decision

import (
	"cmp"
	"slices"
)

// spaceSaving counts the most frequent keys of an unbounded stream in
// fixed memory: the Space-Saving algorithm of Metwally, Agrawal and El
// Abbadi ("Efficient Computation of Frequent and Top-k Elements in Data
// Streams", 2005). It tracks at most capacity keys; a new key evicts the
// key with the smallest count and inherits that count plus one. Counts
// are therefore estimates: never below the true count, and above it by at
// most the count the key inherited (kept as errBound). Any key whose true
// count exceeds total/capacity is guaranteed to be tracked.
//
// Not safe for concurrent use.
type spaceSaving struct {
	capacity int
	index    map[string]*ssEntry
	heap     []*ssEntry // min-heap by count
}

// ssEntry is one tracked key.
type ssEntry struct {
	key      string
	count    uint64
	errBound uint64 // count inherited on eviction: count-errBound <= true count
	pos      int    // index in heap
}

func newSpaceSaving(capacity int) *spaceSaving {
	return &spaceSaving{
		capacity: capacity,
		index:    make(map[string]*ssEntry, capacity),
		heap:     make([]*ssEntry, 0, capacity),
	}
}

// add counts one occurrence of key. Looking key up does not allocate; only
// a key not tracked yet is copied into a string.
func (s *spaceSaving) add(key []byte) {
	if e, ok := s.index[string(key)]; ok {
		e.count++
		s.down(e.pos)
		return
	}
	if len(s.heap) < s.capacity {
		e := &ssEntry{key: string(key), count: 1, pos: len(s.heap)}
		s.index[e.key] = e
		s.heap = append(s.heap, e)
		s.up(e.pos)
		return
	}
	e := s.heap[0]
	delete(s.index, e.key)
	e.key = string(key)
	e.errBound = e.count
	e.count++
	s.index[e.key] = e
	s.down(0)
}

// top returns up to n tracked keys, largest count first, ties by key.
func (s *spaceSaving) top(n int) []ssEntry {
	all := make([]ssEntry, len(s.heap))
	for i, e := range s.heap {
		all[i] = *e
	}
	slices.SortFunc(all, func(a, b ssEntry) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	if len(all) > n {
		all = all[:n]
	}
	return all
}

func (s *spaceSaving) less(i, j int) bool { return s.heap[i].count < s.heap[j].count }

func (s *spaceSaving) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].pos = i
	s.heap[j].pos = j
}

func (s *spaceSaving) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *spaceSaving) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.swap(i, m)
		i = m
	}
}
