package decision

import "sync"

// Store defaults.
const (
	DefaultStoreCapacity   = 50000
	DefaultAllowedCapacity = 10000
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// Capacity is how many deny and audit-deny decisions are kept;
	// DefaultStoreCapacity when <= 0.
	Capacity int
	// AllowedCapacity is how many other (allowed) decisions are kept, in a
	// ring of their own so that a flood of allowed traffic never evicts a
	// denial; DefaultAllowedCapacity when <= 0.
	AllowedCapacity int
}

// Store keeps the most recent decisions in memory for the CLI and the
// dashboard: two rings, one for denied and audit-denied decisions and one
// for the rest, each evicting its oldest when full. It is a Consumer;
// Query, Aggregate and Chains are safe to call while it consumes.
type Store struct {
	mu      sync.RWMutex
	denied  ring
	allowed ring
	seq     uint64 // insertion counter, orders decisions across rings
	// lastID is the newest decision's ID; ordered stays true while every
	// decision came with a higher ID than the one before, as the Stream
	// numbers them, so ID order is insertion order.
	lastID  uint64
	ordered bool
}

// NewStore returns an empty Store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultStoreCapacity
	}
	if cfg.AllowedCapacity <= 0 {
		cfg.AllowedCapacity = DefaultAllowedCapacity
	}
	return &Store{
		ordered: true,
		denied:  ring{buf: make([]entry, cfg.Capacity)},
		allowed: ring{buf: make([]entry, cfg.AllowedCapacity)},
	}
}

// Consume stores d, evicting the oldest decision of its ring when the ring
// is full. It implements Consumer and takes constant time.
func (s *Store) Consume(d *Decision) {
	s.mu.Lock()
	s.seq++
	s.ordered = s.ordered && d.ID > s.lastID
	s.lastID = d.ID
	if d.Denied() {
		s.denied.push(entry{seq: s.seq, d: d})
	} else {
		s.allowed.push(entry{seq: s.seq, d: d})
	}
	s.mu.Unlock()
}

// Len returns how many decisions the store holds.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.denied.n + s.allowed.n
}

// capacity returns how many decisions the store can hold.
func (s *Store) capacity() int { return len(s.denied.buf) + len(s.allowed.buf) }

// each calls f for every stored decision, newest first across both rings,
// until f returns false. s.mu must be held.
func (s *Store) each(f func(e entry) bool) {
	i, j := 0, 0
	for i < s.denied.n || j < s.allowed.n {
		var e entry
		switch {
		case j >= s.allowed.n:
			e, i = s.denied.at(i), i+1
		case i >= s.denied.n:
			e, j = s.allowed.at(j), j+1
		case s.denied.at(i).seq > s.allowed.at(j).seq:
			e, i = s.denied.at(i), i+1
		default:
			e, j = s.allowed.at(j), j+1
		}
		if !f(e) {
			return
		}
	}
}

// entry is one stored decision with its insertion number.
type entry struct {
	seq uint64
	d   *Decision
}

// ring is a fixed-size buffer keeping the newest len(buf) entries.
type ring struct {
	buf     []entry
	next    int  // where the next entry goes
	n       int  // entries held
	evicted bool // an entry has been overwritten
}

func (r *ring) push(e entry) {
	if r.n == len(r.buf) {
		r.evicted = true
	} else {
		r.n++
	}
	r.buf[r.next] = e
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
	}
}

// at returns the i-th newest entry, 0 <= i < n.
func (r *ring) at(i int) entry {
	k := r.next - 1 - i
	if k < 0 {
		k += len(r.buf)
	}
	return r.buf[k]
}
