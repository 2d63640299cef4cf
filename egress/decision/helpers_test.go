package decision

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// recorder is a Consumer keeping what it got.
type recorder struct {
	mu   sync.Mutex
	got  []*Decision
	cond *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) Consume(d *Decision) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// decisions returns a copy of what r got.
func (r *recorder) decisions() []*Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Decision(nil), r.got...)
}

// waitFor waits until r got n decisions, failing the test after 10 s.
func (r *recorder) waitFor(t *testing.T, n int) []*Decision {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("consumer got %d decisions, want %d", len(r.got), n)
		}
		r.cond.Wait()
	}
	return append([]*Decision(nil), r.got...)
}

// blocker is a Consumer whose Consume blocks until release is closed. It
// announces each call on entered.
type blocker struct {
	recorder
	entered chan *Decision
	release chan struct{}
}

func newBlocker() *blocker {
	b := &blocker{entered: make(chan *Decision, 1000), release: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *blocker) Consume(d *Decision) {
	b.entered <- d
	<-b.release
	b.recorder.Consume(d)
}

// runStream runs s until the test ends, and fails the test if Run does
// not return by then. It returns the cancel function and a channel closed
// when Run has returned.
func runStream(t *testing.T, s *Stream) (cancel func(), done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return cancel, ch
}

// syncStream calls s.Sync with a 10 s limit.
func syncStream(t *testing.T, s *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// t0 is the base time of test decisions.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// dec builds a test decision: verdict and host given, the rest plain.
func dec(id uint64, verdict vocab.Verdict, host string) *Decision {
	reason := vocab.ReasonAllowed
	switch verdict {
	case vocab.VerdictDeny, vocab.VerdictAuditDeny:
		reason = vocab.ReasonNotInRegistry
	}
	return &Decision{
		ID:       id,
		Time:     t0.Add(time.Duration(id) * time.Second),
		Layer:    vocab.LayerHTTP,
		Verdict:  verdict,
		Reason:   reason,
		Source:   netip.MustParseAddrPort("10.0.0.1:40000"),
		Host:     host,
		Port:     80,
		Protocol: "HTTP/1.1",
	}
}

// ids returns the IDs of ds.
func ids(ds []*Decision) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
