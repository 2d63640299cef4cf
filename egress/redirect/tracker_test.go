package redirect

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

type published struct {
	mu   sync.Mutex
	list []*decision.Decision
	ch   chan struct{}
}

func (p *published) add(d *decision.Decision) {
	p.mu.Lock()
	p.list = append(p.list, d)
	p.mu.Unlock()
	p.ch <- struct{}{}
}

// TestTrackerReorders: the follow-up request's entry arrives before the
// redirect's (another Envoy logger flushed first); the tracker still links
// them, because it releases by start time.
func TestTrackerReorders(t *testing.T) {
	p := &published{ch: make(chan struct{}, 10)}
	tr := NewTracker(Config{Publish: p.add, Allowlist: testAllowlist(t), Outbound: serviceentry.RegistryOnly, Delay: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	redirect := &decision.Decision{Time: start, Layer: vocab.LayerHTTP, Source: client, Host: "b.test", Port: 80, Path: "/",
		Status: 302, Location: "http://www.docker.io/", Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	follow := &decision.Decision{Time: start.Add(5 * time.Millisecond), Layer: vocab.LayerHTTP, Source: client, Host: "www.docker.io", Port: 80, Path: "/",
		Status: 200, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed}
	tr.Add(follow)
	time.Sleep(20 * time.Millisecond)
	tr.Add(redirect)
	for range 2 {
		select {
		case <-p.ch:
		case <-time.After(5 * time.Second):
			t.Fatal("decisions not released")
		}
	}
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
		t.Errorf("released after %v, before the delay", elapsed)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.list[0] != redirect || p.list[1] != follow {
		t.Fatalf("released out of start order")
	}
	if follow.Chain == nil || follow.Chain.ID != redirect.Chain.ID || follow.Chain.Hop != 1 {
		t.Errorf("follow-up not linked: %+v", follow.Chain)
	}
}

// TestTrackerFlushesOnStop: nothing held is lost when the tracker stops,
// and later decisions pass straight through.
func TestTrackerFlushesOnStop(t *testing.T) {
	p := &published{ch: make(chan struct{}, 10)}
	tr := NewTracker(Config{Publish: p.add, Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	tr.Add(&decision.Decision{Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny})
	tr.Add(&decision.Decision{Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny})
	cancel()
	<-done
	tr.Add(&decision.Decision{Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny})
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.list) != 3 {
		t.Errorf("published %d, want 3", len(p.list))
	}
}
