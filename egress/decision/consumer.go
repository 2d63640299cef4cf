package decision

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultConsumerBuffer is a consumer's queue length when Stream.Add gets
// a buffer <= 0.
const DefaultConsumerBuffer = 8192

// Consumer receives decisions in publish order on its own goroutine. It
// must not modify them.
type Consumer interface {
	Consume(d *Decision)
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(d *Decision)

// Consume calls f(d).
func (f ConsumerFunc) Consume(d *Decision) { f(d) }

// consumer is one added Consumer with its queue and goroutine.
type consumer struct {
	c        Consumer
	queue    chan *Decision
	dropped  atomic.Uint64
	droppedC prometheus.Counter

	// lastQueued is the ID of the last decision put in queue; dispatcher
	// only.
	lastQueued uint64
	// consumed is the ID of the last decision Consume returned from.
	consumed atomic.Uint64

	// Sync waiters: nwait mirrors len(waiters) so the consumer goroutine
	// checks it without locking.
	mu      sync.Mutex
	waiters []waiter
	nwait   atomic.Int32
}

// waiter is one Sync waiting for a consumer to reach target.
type waiter struct {
	target uint64
	req    *syncRequest
}

// syncRequest is one Sync call: done closes when pending drops to 0.
type syncRequest struct {
	pending atomic.Int64
	done    chan struct{}
}

// release gives up one share of req.
func (req *syncRequest) release() {
	if req.pending.Add(-1) == 0 {
		close(req.done)
	}
}

func newConsumer(buffer int, c Consumer, dropped prometheus.Counter) *consumer {
	return &consumer{c: c, queue: make(chan *Decision, buffer), droppedC: dropped}
}

// offer queues d without blocking, or counts it as dropped. Dispatcher
// only.
func (c *consumer) offer(d *Decision) {
	select {
	case c.queue <- d:
		c.lastQueued = d.ID
	default:
		c.dropped.Add(1)
		c.droppedC.Inc()
	}
}

// run consumes the queue until it is closed and empty.
func (c *consumer) run() {
	for d := range c.queue {
		c.c.Consume(d)
		c.consumed.Store(d.ID)
		if c.nwait.Load() > 0 {
			c.mu.Lock()
			c.wake()
			c.mu.Unlock()
		}
	}
}

// await makes req wait until this consumer has consumed the decision
// with ID target (0: nothing to wait for). Dispatcher only.
func (c *consumer) await(target uint64, req *syncRequest) {
	if target == 0 || c.consumed.Load() >= target {
		return
	}
	req.pending.Add(1)
	c.mu.Lock()
	c.waiters = append(c.waiters, waiter{target: target, req: req})
	c.nwait.Store(int32(len(c.waiters)))
	// The consumer may have passed target between the check above and
	// the store of nwait: check again now that it will see the waiter.
	c.wake()
	c.mu.Unlock()
}

// wake releases the waiters whose target has been consumed. c.mu held.
func (c *consumer) wake() {
	done := c.consumed.Load()
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if done >= w.target {
			w.req.release()
		} else {
			kept = append(kept, w)
		}
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
	c.nwait.Store(int32(len(kept)))
}
