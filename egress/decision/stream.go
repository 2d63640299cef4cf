package decision

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultStreamBuffer is the intake queue length when StreamConfig.Buffer
// is not set.
const DefaultStreamBuffer = 65536

// Drop accounts that are not consumer names.
const (
	// DropStream counts decisions Publish refused because the intake
	// queue was full.
	DropStream = "stream"
	// DropSubscriber counts decisions dropped for any Subscription.
	DropSubscriber = "subscriber"
)

// StreamConfig configures a Stream.
type StreamConfig struct {
	// Buffer is the intake queue length; DefaultStreamBuffer when <= 0.
	Buffer int
	// Registerer, when not nil, gets the stream's collectors
	// (egressd_decisions_published_total, egressd_decisions_dropped_total).
	Registerer prometheus.Registerer
	// Gather is how long the dispatcher lets decisions gather after the
	// first one of a burst before it hands them on, so that it and the
	// consumers wake once per batch instead of once per decision (which,
	// at thousands of denials a second, costs the data path CPU and tail
	// latency). DefaultGather when 0; negative: no gathering.
	Gather time.Duration
}

// DefaultGather is StreamConfig.Gather's default.
const DefaultGather = 2 * time.Millisecond

// Stream fans decisions out from any number of publishers to named
// consumers and dynamic subscribers. Publishers never block: one dispatcher
// goroutine moves each decision from a bounded intake queue to one bounded
// queue per consumer, and whatever does not fit is dropped and counted.
type Stream struct {
	in     chan *Decision
	syncs  chan *syncRequest
	gather time.Duration

	published   atomic.Uint64
	intakeDrops atomic.Uint64
	subDrops    atomic.Uint64

	publishedC  prometheus.Counter
	droppedVec  *prometheus.CounterVec
	intakeDropC prometheus.Counter
	subDropC    prometheus.Counter

	mu        sync.Mutex
	consumers []*consumer
	byName    map[string]*consumer
	started   bool
	ended     bool // Run returned; subscriptions are closed
	subs      atomic.Pointer[[]*Subscription]
	stopped   chan struct{} // closed when Run returns

	nextID uint64 // dispatcher only
}

// NewStream returns a Stream ready for Add, Subscribe and Run. Publish
// works before Run starts: decisions wait in the intake queue. It panics
// if registering its collectors fails, as prometheus.MustRegister does.
func NewStream(cfg StreamConfig) *Stream {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultStreamBuffer
	}
	switch {
	case cfg.Gather == 0:
		cfg.Gather = DefaultGather
	case cfg.Gather < 0:
		cfg.Gather = 0
	}
	s := &Stream{
		gather: cfg.Gather,
		in:     make(chan *Decision, cfg.Buffer),
		syncs:  make(chan *syncRequest),
		byName: map[string]*consumer{},
		publishedC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "egressd_decisions_published_total",
			Help: "Decisions accepted by the decision stream.",
		}),
		droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_decisions_dropped_total",
			Help: `Decisions dropped because a queue was full, by consumer ("stream": the intake queue, "subscriber": any live subscriber, else the consumer's name).`,
		}, []string{"consumer"}),
		stopped: make(chan struct{}),
	}
	s.intakeDropC = s.droppedVec.WithLabelValues(DropStream)
	s.subDropC = s.droppedVec.WithLabelValues(DropSubscriber)
	s.subs.Store(&[]*Subscription{})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.publishedC, s.droppedVec)
	}
	return s
}

// Publish hands d to the stream without blocking. It returns false, and
// counts a drop under consumer="stream", when the intake queue is full.
// The caller must not touch d afterwards. Publish is safe for concurrent
// use and does not allocate.
func (s *Stream) Publish(d *Decision) bool {
	select {
	case s.in <- d:
		s.published.Add(1)
		s.publishedC.Inc()
		return true
	default:
		s.intakeDrops.Add(1)
		s.intakeDropC.Inc()
		return false
	}
}

// Add registers a named consumer with its own queue of buffer decisions
// (DefaultConsumerBuffer when <= 0). Consume is called on the consumer's
// own goroutine, in publish order. When the queue is full a decision is
// dropped for this consumer only and counted under consumer=name. Add must
// be called before Run; it panics afterwards, for a duplicate name, and for
// the reserved names "stream" and "subscriber".
func (s *Stream) Add(name string, buffer int, c Consumer) {
	if buffer <= 0 {
		buffer = DefaultConsumerBuffer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.started:
		panic(fmt.Sprintf("decision: Stream.Add(%q) after Run", name))
	case name == DropStream || name == DropSubscriber || name == "":
		panic(fmt.Sprintf("decision: Stream.Add: consumer name %q is reserved", name))
	case s.byName[name] != nil:
		panic(fmt.Sprintf("decision: Stream.Add: consumer %q added twice", name))
	}
	cs := newConsumer(buffer, c, s.droppedVec.WithLabelValues(name))
	s.consumers = append(s.consumers, cs)
	s.byName[name] = cs
}

// Run dispatches decisions until ctx is done. Before it returns, every
// decision already in the intake queue is handed to the consumers (as
// always, without blocking: a full consumer queue still drops), the
// consumers have consumed what their queues hold and their goroutines
// have finished, and every Subscription's channel is closed. It returns
// nil, or an error when the stream was already run.
func (s *Stream) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("decision: Stream.Run called twice")
	}
	s.started = true
	consumers := s.consumers
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run()
		}()
	}

	for {
		select {
		case d := <-s.in:
			if s.gather > 0 {
				time.Sleep(s.gather)
			}
			s.dispatch(d, consumers)
			s.drain(consumers)
		case req := <-s.syncs:
			s.drain(consumers)
			for _, c := range consumers {
				c.await(c.lastQueued, req)
			}
			req.release()
		case <-ctx.Done():
			s.drain(consumers)
			for _, c := range consumers {
				close(c.queue)
			}
			wg.Wait()
			s.closeSubscriptions()
			close(s.stopped)
			return nil
		}
	}
}

// drain dispatches what the intake queue holds now. Publishers may keep
// adding; those decisions wait for the next round.
func (s *Stream) drain(consumers []*consumer) {
	for n := len(s.in); n > 0; n-- {
		s.dispatch(<-s.in, consumers)
	}
}

// dispatch numbers d, stamps it when it has no time, and offers it to
// every consumer and subscriber. After this d is read-only.
func (s *Stream) dispatch(d *Decision, consumers []*consumer) {
	s.nextID++
	d.ID = s.nextID
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	for _, c := range consumers {
		c.offer(d)
	}
	for _, sub := range *s.subs.Load() {
		if !sub.offer(d) {
			s.subDrops.Add(1)
			s.subDropC.Inc()
		}
	}
}

// Sync waits until every decision published before the call has been
// consumed (Consume returned) by every added consumer, or dropped for it,
// or until ctx ends (it then returns ctx.Err()). It needs Run to be
// running; once Run has returned it returns nil at once, since Run drains
// before returning (decisions published after that are never consumed).
func (s *Stream) Sync(ctx context.Context) error {
	req := &syncRequest{done: make(chan struct{})}
	req.pending.Store(1) // the dispatcher's own share, see release
	select {
	case s.syncs <- req:
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		return nil
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Published returns how many decisions Publish accepted.
func (s *Stream) Published() uint64 { return s.published.Load() }

// Dropped returns how many decisions were dropped for consumer: a name
// given to Add, DropStream (intake queue full) or DropSubscriber (all
// subscriptions together). It returns 0 for an unknown name.
func (s *Stream) Dropped(consumer string) uint64 {
	switch consumer {
	case DropStream:
		return s.intakeDrops.Load()
	case DropSubscriber:
		return s.subDrops.Load()
	}
	s.mu.Lock()
	c := s.byName[consumer]
	s.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.dropped.Load()
}
