package netguard

import (
	"strings"
	"sync"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Refusal is what the gateway's resolver refused for one name at its last
// lookup: the addresses it dropped, and whether any were left.
type Refusal struct {
	// Name is the name looked up (lower case, no trailing dot).
	Name string
	// Refused are the addresses dropped, each with its verdict.
	Refused []Verdict
	// Kept is the number of addresses handed to the gateway: 0 means the
	// gateway had nowhere to connect.
	Kept int
	// ServiceEntry is "namespace/name" of the entry the name belongs to,
	// when one does.
	ServiceEntry string
	// At is when the lookup was answered.
	At time.Time
}

// Reason is the refusal's decision reason: forwarding_loop when any
// refused address is the gateway's own, else blocked_address.
func (r Refusal) Reason() vocab.Reason {
	for _, v := range r.Refused {
		if v.Reason == vocab.ReasonForwardingLoop {
			return vocab.ReasonForwardingLoop
		}
	}
	return vocab.ReasonBlockedAddress
}

// Detail says in words what was refused: "api.example.test resolved to
// 127.0.0.1 (loopback); the gateway does not connect there".
func (r Refusal) Detail() string {
	addrs := make([]string, len(r.Refused))
	for i, v := range r.Refused {
		addrs[i] = v.String()
	}
	return r.Name + " resolved to " + strings.Join(addrs, ", ") + "; the gateway does not connect there"
}

// Ledger remembers the gateway resolver's latest refusal per name, for a
// while, so that a request that failed for want of an address can be
// reported with the address refused. It is bounded: past its capacity the
// oldest names are forgotten. Safe for concurrent use.
type Ledger struct {
	ttl      time.Duration
	capacity int

	mu    sync.Mutex
	names map[string]*ledgerItem
	// order is a ring of names in insertion order, for eviction; an item
	// remembers its slot so a stale slot is recognised.
	order []string
	next  int
}

type ledgerItem struct {
	r    Refusal
	slot int
}

// Defaults of NewLedger.
const (
	DefaultLedgerTTL      = 10 * time.Minute
	DefaultLedgerCapacity = 4096
)

// NewLedger returns a Ledger keeping refusals for ttl, at most capacity
// names (defaults for values <= 0).
func NewLedger(ttl time.Duration, capacity int) *Ledger {
	if ttl <= 0 {
		ttl = DefaultLedgerTTL
	}
	if capacity <= 0 {
		capacity = DefaultLedgerCapacity
	}
	return &Ledger{ttl: ttl, capacity: capacity, names: map[string]*ledgerItem{}, order: make([]string, capacity)}
}

// LedgerKey is the form names are kept under: lower case, without the
// trailing dot.
func LedgerKey(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Refuse records r for its name, replacing an older refusal.
func (l *Ledger) Refuse(r Refusal) {
	if l == nil {
		return
	}
	r.Name = LedgerKey(r.Name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if it, ok := l.names[r.Name]; ok {
		it.r = r
		return
	}
	if old := l.order[l.next]; old != "" {
		if it, ok := l.names[old]; ok && it.slot == l.next {
			delete(l.names, old)
		}
	}
	l.order[l.next] = r.Name
	l.names[r.Name] = &ledgerItem{r: r, slot: l.next}
	l.next = (l.next + 1) % l.capacity
}

// Resolved forgets the refusal of name: its latest lookup kept every
// address.
func (l *Ledger) Resolved(name string) {
	if l == nil {
		return
	}
	key := LedgerKey(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.names, key)
}

// Lookup returns the latest refusal of name if it is recent enough (at
// now), else false.
func (l *Ledger) Lookup(name string, now time.Time) (Refusal, bool) {
	if l == nil {
		return Refusal{}, false
	}
	key := LedgerKey(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	it, ok := l.names[key]
	if !ok || now.Sub(it.r.At) > l.ttl {
		return Refusal{}, false
	}
	return it.r, true
}

// Len is the number of names held.
func (l *Ledger) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.names)
}
