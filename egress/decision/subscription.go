package decision

import (
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultSubscriptionBuffer is a subscription's channel length when
// Stream.Subscribe gets a buffer <= 0.
const DefaultSubscriptionBuffer = 1024

// Subscription is one dynamic subscriber, such as one client of the
// server-sent events endpoint. It receives every decision dispatched
// after Subscribe, as long as its channel has room; what does not fit is
// dropped and counted.
type Subscription struct {
	stream  *Stream
	ch      chan *Decision
	dropped atomic.Uint64

	mu     sync.Mutex // guards closed and sending on ch
	closed bool
}

// Subscribe registers a subscriber whose channel holds buffer decisions
// (DefaultSubscriptionBuffer when <= 0). Drops are counted per
// subscription and, all subscriptions together, under
// consumer="subscriber". It may be called at any time; after Run has
// returned the subscription comes back closed.
func (s *Stream) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	sub := &Subscription{stream: s, ch: make(chan *Decision, buffer)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		sub.closed = true
		close(sub.ch)
		return sub
	}
	subs := append(slices.Clone(*s.subs.Load()), sub)
	s.subs.Store(&subs)
	return sub
}

// C returns the channel decisions arrive on. It is closed by Close and
// when the stream's Run returns.
func (sub *Subscription) C() <-chan *Decision { return sub.ch }

// Dropped returns how many decisions this subscription missed because its
// channel was full.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close unregisters the subscription and closes its channel. It is
// idempotent and safe while Run is running.
func (sub *Subscription) Close() {
	s := sub.stream
	s.mu.Lock()
	subs := slices.DeleteFunc(slices.Clone(*s.subs.Load()), func(x *Subscription) bool { return x == sub })
	s.subs.Store(&subs)
	s.mu.Unlock()
	sub.close()
}

// close closes the channel once.
func (sub *Subscription) close() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.ch)
	}
}

// offer sends d without blocking; it reports false when d was dropped.
// A closed subscription takes nothing and drops nothing.
func (sub *Subscription) offer(d *Decision) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return true
	}
	select {
	case sub.ch <- d:
		return true
	default:
		sub.dropped.Add(1)
		return false
	}
}

// closeSubscriptions closes every subscription; later ones start closed.
func (s *Stream) closeSubscriptions() {
	s.mu.Lock()
	s.ended = true
	subs := *s.subs.Load()
	s.subs.Store(&[]*Subscription{})
	s.mu.Unlock()
	for _, sub := range subs {
		sub.close()
	}
}
