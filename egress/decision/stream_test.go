package decision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func TestStreamPublishOrderAndIDs(t *testing.T) {
	s := NewStream(StreamConfig{})
	rec := newRecorder()
	s.Add("rec", 2000, rec)
	stamped := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

	// Half before Run (they wait in the intake queue), half during.
	const n = 1000
	publish := func(i int) {
		d := &Decision{ID: 999999, Host: fmt.Sprintf("h%d", i)}
		if i%2 == 0 {
			d.Time = stamped
		}
		if !s.Publish(d) {
			t.Fatalf("Publish %d refused", i)
		}
	}
	for i := range n / 2 {
		publish(i)
	}
	runStream(t, s)
	for i := n / 2; i < n; i++ {
		publish(i)
	}
	syncStream(t, s)

	got := rec.decisions()
	if len(got) != n {
		t.Fatalf("got %d decisions, want %d", len(got), n)
	}
	before := time.Now()
	for i, d := range got {
		if want := uint64(i + 1); d.ID != want {
			t.Errorf("decision %d: ID %d, want %d", i, d.ID, want)
		}
		if want := fmt.Sprintf("h%d", i); d.Host != want {
			t.Errorf("decision %d: host %q, want %q (publish order)", i, d.Host, want)
		}
		switch {
		case i%2 == 0 && !d.Time.Equal(stamped):
			t.Errorf("decision %d: time %v overwritten, want %v", i, d.Time, stamped)
		case i%2 == 1 && (d.Time.IsZero() || d.Time.After(before)):
			t.Errorf("decision %d: zero time not stamped with now: %v", i, d.Time)
		}
	}
	if got := s.Published(); got != n {
		t.Errorf("Published() = %d, want %d", got, n)
	}
}

func TestStreamConcurrentPublishers(t *testing.T) {
	s := NewStream(StreamConfig{})
	rec := newRecorder()
	s.Add("rec", 10000, rec)
	runStream(t, s)

	const publishers, each = 8, 1000
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if !s.Publish(&Decision{Host: fmt.Sprintf("p%d", p), Port: uint32(i)}) {
					t.Errorf("Publish refused")
				}
			}
		})
	}
	wg.Wait()
	syncStream(t, s)

	got := rec.decisions()
	if len(got) != publishers*each {
		t.Fatalf("got %d decisions, want %d", len(got), publishers*each)
	}
	next := map[string]uint32{}
	for i, d := range got {
		if d.ID != uint64(i+1) {
			t.Fatalf("decision %d has ID %d, want %d", i, d.ID, i+1)
		}
		if d.Port != next[d.Host] {
			t.Fatalf("publisher %s: got its decision %d, want %d (order)", d.Host, d.Port, next[d.Host])
		}
		next[d.Host]++
	}
}

func TestStreamFanOut(t *testing.T) {
	s := NewStream(StreamConfig{})
	recs := []*recorder{newRecorder(), newRecorder(), newRecorder()}
	for i, r := range recs {
		s.Add(fmt.Sprintf("c%d", i), 100, r)
	}
	runStream(t, s)
	for i := range 50 {
		s.Publish(dec(0, vocab.VerdictDeny, fmt.Sprintf("h%d.test", i)))
	}
	syncStream(t, s)
	want := recs[0].decisions()
	if len(want) != 50 {
		t.Fatalf("consumer 0 got %d decisions, want 50", len(want))
	}
	for i, r := range recs[1:] {
		got := r.decisions()
		if len(got) != len(want) {
			t.Fatalf("consumer %d got %d decisions, want %d", i+1, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Errorf("consumer %d decision %d differs from consumer 0's: consumers must share the same *Decision", i+1, j)
			}
		}
	}
}

func TestStreamSlowConsumer(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStream(StreamConfig{Registerer: reg})
	slow := newBlocker()
	fast := newRecorder()
	s.Add("slow", 4, slow)
	s.Add("fast", 100, fast)
	runStream(t, s)

	// The first decision occupies the slow consumer; then its queue holds
	// 4 and the remaining 15 are dropped for it alone.
	s.Publish(dec(0, vocab.VerdictDeny, "first.test"))
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer never got the first decision")
	}
	start := time.Now()
	for i := range 19 {
		if !s.Publish(dec(0, vocab.VerdictDeny, fmt.Sprintf("h%d.test", i))) {
			t.Fatalf("Publish %d refused while a consumer is blocked", i)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("19 Publish calls took %v with a blocked consumer", d)
	}
	fast.waitFor(t, 20) // the other consumer is not held up

	// Every decision has been offered to both consumers once the fast
	// one has the last of them (the slow one is offered first).
	if got := s.Dropped("slow"); got != 15 {
		t.Errorf(`Dropped("slow") = %d, want 15`, got)
	}
	if got := s.Dropped("fast"); got != 0 {
		t.Errorf(`Dropped("fast") = %d, want 0`, got)
	}
	want := `
# HELP egressd_decisions_dropped_total Decisions dropped because a queue was full, by consumer ("stream": the intake queue, "subscriber": any live subscriber, else the consumer's name).
# TYPE egressd_decisions_dropped_total counter
egressd_decisions_dropped_total{consumer="fast"} 0
egressd_decisions_dropped_total{consumer="slow"} 15
egressd_decisions_dropped_total{consumer="stream"} 0
egressd_decisions_dropped_total{consumer="subscriber"} 0
# HELP egressd_decisions_published_total Decisions accepted by the decision stream.
# TYPE egressd_decisions_published_total counter
egressd_decisions_published_total 20
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	close(slow.release)
	syncStream(t, s)
	if got, want := ids(slow.decisions()), []uint64{1, 2, 3, 4, 5}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slow consumer got IDs %v, want %v", got, want)
	}
}

func TestStreamFullIntake(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStream(StreamConfig{Buffer: 3, Registerer: reg})
	rec := newRecorder()
	s.Add("rec", 10, rec)

	// Run not started: the queue fills, then Publish refuses and counts.
	var accepted []bool
	for i := range 5 {
		accepted = append(accepted, s.Publish(dec(0, vocab.VerdictAllow, fmt.Sprintf("h%d", i))))
	}
	if want := []bool{true, true, true, false, false}; fmt.Sprint(accepted) != fmt.Sprint(want) {
		t.Errorf("Publish results %v, want %v", accepted, want)
	}
	if got := s.Published(); got != 3 {
		t.Errorf("Published() = %d, want 3", got)
	}
	if got := s.Dropped(DropStream); got != 2 {
		t.Errorf("Dropped(stream) = %d, want 2", got)
	}
	if got := testutil.ToFloat64(s.droppedVec.WithLabelValues(DropStream)); got != 2 {
		t.Errorf(`egressd_decisions_dropped_total{consumer="stream"} = %v, want 2`, got)
	}
	if got := testutil.ToFloat64(s.publishedC); got != 3 {
		t.Errorf("egressd_decisions_published_total = %v, want 3", got)
	}

	runStream(t, s)
	syncStream(t, s)
	if got := rec.decisions(); len(got) != 3 || got[2].Host != "h2" {
		t.Errorf("consumer got %d decisions, want the 3 accepted ones", len(got))
	}
}

func TestStreamRunDrainsOnCancel(t *testing.T) {
	s := NewStream(StreamConfig{})
	rec := newRecorder()
	s.Add("rec", 200, rec)
	sub := s.Subscribe(200)
	for range 100 {
		s.Publish(dec(0, vocab.VerdictDeny, "x.test"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run sees a done context at once: all it does is drain
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := len(rec.decisions()); got != 100 {
		t.Errorf("after Run returned the consumer had %d decisions, want 100", got)
	}
	n := 0
	for range sub.C() { // closed by Run, so this ends
		n++
	}
	if n != 100 {
		t.Errorf("subscription got %d decisions, want 100", n)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Errorf("Sync after Run returned: %v", err)
	}
	late := s.Subscribe(1)
	if _, open := <-late.C(); open {
		t.Error("Subscribe after Run returned an open subscription")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run returned nil")
	}
}

func TestStreamSync(t *testing.T) {
	t.Run("waits for consumers", func(t *testing.T) {
		s := NewStream(StreamConfig{})
		var mu sync.Mutex
		consumed := 0
		s.Add("sleepy", 1000, ConsumerFunc(func(*Decision) {
			time.Sleep(50 * time.Microsecond)
			mu.Lock()
			consumed++
			mu.Unlock()
		}))
		rec := newRecorder()
		s.Add("rec", 1000, rec)
		runStream(t, s)
		for range 300 {
			s.Publish(dec(0, vocab.VerdictDeny, "x.test"))
		}
		syncStream(t, s)
		mu.Lock()
		defer mu.Unlock()
		if consumed != 300 || len(rec.decisions()) != 300 {
			t.Errorf("after Sync: consumed %d and %d, want 300 each", consumed, len(rec.decisions()))
		}
	})
	t.Run("nothing published", func(t *testing.T) {
		s := NewStream(StreamConfig{})
		s.Add("rec", 10, newRecorder())
		runStream(t, s)
		syncStream(t, s)
	})
	t.Run("blocked consumer: ctx ends", func(t *testing.T) {
		s := NewStream(StreamConfig{})
		b := newBlocker()
		s.Add("blocked", 10, b)
		runStream(t, s)
		t.Cleanup(func() { close(b.release) }) // before Run's cleanup waits
		s.Publish(dec(0, vocab.VerdictDeny, "x.test"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Sync with a blocked consumer = %v, want deadline exceeded", err)
		}
	})
	t.Run("Run not started: ctx ends", func(t *testing.T) {
		s := NewStream(StreamConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := s.Sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Sync before Run = %v, want deadline exceeded", err)
		}
	})
	t.Run("dropped decisions do not hold Sync", func(t *testing.T) {
		s := NewStream(StreamConfig{})
		b := newBlocker()
		s.Add("small", 1, b)
		runStream(t, s)
		s.Publish(dec(0, vocab.VerdictDeny, "x.test"))
		<-b.entered
		for range 5 { // one queued, four dropped
			s.Publish(dec(0, vocab.VerdictDeny, "x.test"))
		}
		time.AfterFunc(10*time.Millisecond, func() { close(b.release) })
		syncStream(t, s)
		if got := len(b.decisions()); got != 2 {
			t.Errorf("consumed %d, want 2", got)
		}
		if got := s.Dropped("small"); got != 4 {
			t.Errorf("dropped %d, want 4", got)
		}
	})
}

func TestSubscribe(t *testing.T) {
	s := NewStream(StreamConfig{})
	runStream(t, s)

	reader := s.Subscribe(10)
	idle := s.Subscribe(2) // never read: keeps 2, drops the rest
	for i := range 5 {
		s.Publish(dec(0, vocab.VerdictDeny, fmt.Sprintf("h%d", i)))
	}
	syncStream(t, s) // subscriptions are offered a decision before Sync sees it done
	for i := range 5 {
		d := <-reader.C()
		if d.ID != uint64(i+1) {
			t.Errorf("subscriber got ID %d, want %d", d.ID, i+1)
		}
	}
	if got := idle.Dropped(); got != 3 {
		t.Errorf("idle subscription Dropped() = %d, want 3", got)
	}
	if got := reader.Dropped(); got != 0 {
		t.Errorf("reading subscription Dropped() = %d, want 0", got)
	}
	if got := s.Dropped(DropSubscriber); got != 3 {
		t.Errorf("Dropped(subscriber) = %d, want 3", got)
	}

	// Close while Run runs and decisions flow.
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			s.Publish(dec(0, vocab.VerdictAllow, "flow"))
		}
	})
	reader.Close()
	reader.Close() // idempotent
	for range reader.C() {
	} // closed: the loop ends
	wg.Wait()
	syncStream(t, s)
	if got := s.Dropped(DropSubscriber); got != 3+1000 {
		t.Errorf("Dropped(subscriber) = %d, want %d (only the idle subscription drops)", got, 3+1000)
	}
	if got := len(*s.subs.Load()); got != 1 {
		t.Errorf("%d subscriptions registered, want 1", got)
	}

	// Many subscribe and close while decisions flow; run with -race.
	wg.Go(func() {
		for range 2000 {
			s.Publish(dec(0, vocab.VerdictAllow, "flow"))
		}
	})
	for range 50 {
		sub := s.Subscribe(1)
		sub.Close()
	}
	wg.Wait()
}

func TestStreamAddMisuse(t *testing.T) {
	for name, f := range map[string]func(s *Stream){
		"reserved stream":     func(s *Stream) { s.Add(DropStream, 1, newRecorder()) },
		"reserved subscriber": func(s *Stream) { s.Add(DropSubscriber, 1, newRecorder()) },
		"duplicate":           func(s *Stream) { s.Add("a", 1, newRecorder()); s.Add("a", 1, newRecorder()) },
		"after Run": func(s *Stream) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = s.Run(ctx)
			s.Add("late", 1, newRecorder())
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewStream(StreamConfig{Buffer: 1}))
		})
	}
}

func TestPublishDoesNotAllocate(t *testing.T) {
	s := NewStream(StreamConfig{Buffer: 50, Registerer: prometheus.NewRegistry()})
	d := dec(0, vocab.VerdictDeny, "a.test")
	// 100 runs into a queue of 50: both the accepted and the dropped path.
	if n := testing.AllocsPerRun(100, func() { s.Publish(d) }); n != 0 {
		t.Errorf("Publish allocates %v times per call, want 0", n)
	}
	if s.Dropped(DropStream) == 0 || s.Published() != 50 {
		t.Errorf("published %d, dropped %d: the test did not cover both paths", s.Published(), s.Dropped(DropStream))
	}
}
