package redirect

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
)

// Config configures a Tracker.
type Config struct {
	// Publish receives every decision in start-time order (it must not
	// block: the decision stream's Publish).
	Publish func(*decision.Decision)
	// Allowlist returns the current allowlist.
	Allowlist func() *serviceentry.Allowlist
	// Outbound is the gateway's outbound mode.
	Outbound serviceentry.OutboundMode
	// Delay is how long a decision is held, counted from its start time,
	// so that entries Envoy's loggers deliver out of order (each logger
	// flushes on its own timer) are linked in the order they happened.
	// It must exceed the gateway's access log flush interval. Default 1s.
	Delay time.Duration
	// TTL is how long a Location waits for the client to follow it.
	// Default 30s.
	TTL time.Duration
	// MaxPending bounds the Locations waiting. Default 10000.
	MaxPending int
}

// Tracker puts the gateway's decisions back in start-time order, links
// redirect chains, and publishes. Add is safe for concurrent use.
type Tracker struct {
	cfg    Config
	linker *Linker

	mu      sync.Mutex
	held    byStart
	seq     uint64
	wake    chan struct{}
	stopped bool
}

// NewTracker returns a Tracker; Run must run for decisions to flow.
func NewTracker(cfg Config) *Tracker {
	if cfg.Delay <= 0 {
		cfg.Delay = time.Second
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Tracker{
		cfg:    cfg,
		linker: NewLinker(hex.EncodeToString(b[:])+"-", cfg.TTL, cfg.MaxPending, cfg.Allowlist, cfg.Outbound),
		wake:   make(chan struct{}, 1),
	}
}

// Add holds d until Delay after its start. After Run has returned, d is
// published at once.
func (t *Tracker) Add(d *decision.Decision) {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		t.cfg.Publish(d)
		return
	}
	t.seq++
	heap.Push(&t.held, held{d: d, seq: t.seq})
	first := t.held[0].d == d
	t.mu.Unlock()
	if first {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// Run releases held decisions as they come due, until ctx ends; then it
// releases everything still held and returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := t.release(time.Now(), false)
		if next > 0 {
			timer.Reset(next)
		}
		select {
		case <-ctx.Done():
			t.mu.Lock()
			t.stopped = true
			t.mu.Unlock()
			t.release(time.Now(), true)
			return nil
		case <-t.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// release publishes every decision due at now (all with flush) and returns
// how long until the next is due, or 0 when none is held.
func (t *Tracker) release(now time.Time, flush bool) time.Duration {
	for {
		t.mu.Lock()
		if len(t.held) == 0 {
			t.mu.Unlock()
			return 0
		}
		due := t.held[0].d.Time.Add(t.cfg.Delay)
		if !flush && due.After(now) {
			t.mu.Unlock()
			return due.Sub(now)
		}
		h := heap.Pop(&t.held).(held)
		t.mu.Unlock()
		// Only Run calls release, so the linker is used by one goroutine.
		for _, d := range t.linker.Link(h.d, now) {
			t.cfg.Publish(d)
		}
	}
}

type held struct {
	d   *decision.Decision
	seq uint64 // ties keep arrival order
}

// byStart is a min-heap by start time.
type byStart []held

func (h byStart) Len() int { return len(h) }
func (h byStart) Less(i, j int) bool {
	if !h[i].d.Time.Equal(h[j].d.Time) {
		return h[i].d.Time.Before(h[j].d.Time)
	}
	return h[i].seq < h[j].seq
}
func (h byStart) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *byStart) Push(x any)   { *h = append(*h, x.(held)) }
func (h *byStart) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = held{}
	*h = old[:len(old)-1]
	return x
}
