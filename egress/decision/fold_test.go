package decision

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// fakeClock is a settable clock for FoldConfig.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFolding(window time.Duration, maxLines int) (*FoldingLogger, *observer.ObservedLogs, *fakeClock) {
	core, logs := observer.New(zap.DebugLevel)
	clock := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	return NewFoldingLogger(zap.New(core), FoldConfig{Window: window, MaxLines: maxLines, Now: clock.now}), logs, clock
}

func denial(id uint64, host, source string) *Decision {
	return &Decision{ID: id, Layer: vocab.LayerDNS, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Host: host, Source: netip.MustParseAddrPort(source)}
}

func messages(logs *observer.ObservedLogs) map[string]int {
	out := map[string]int{}
	for _, e := range logs.All() {
		out[e.Message]++
	}
	return out
}

func TestFoldingWindowZeroLogsEveryLine(t *testing.T) {
	f, logs, _ := newFolding(0, 0)
	for i := range 50 {
		f.Consume(denial(uint64(i+1), "evil.test", "10.0.0.1:5000"))
	}
	f.Flush()
	if n := logs.FilterMessage(MsgDenied).Len(); n != 50 {
		t.Errorf("%d lines, want 50", n)
	}
}

// TestFoldingIdenticalDenials: one line, then one summary with the count
// of the others, whatever their source ports; the next window logs again.
func TestFoldingIdenticalDenials(t *testing.T) {
	f, logs, clock := newFolding(time.Second, 0)
	for i := range 1000 {
		f.Consume(denial(uint64(i+1), "evil.test", fmt.Sprintf("10.0.0.1:%d", 1024+i)))
		clock.add(500 * time.Microsecond)
	}
	if got := messages(logs); got[MsgDenied] != 1 || got[MsgRepeated] != 0 {
		t.Fatalf("within the window: %v", got)
	}
	clock.add(600 * time.Millisecond)
	f.Flush()
	rep := logs.FilterMessage(MsgRepeated).All()
	if len(rep) != 1 {
		t.Fatalf("summaries: %v", messages(logs))
	}
	fields := rep[0].ContextMap()
	if fields[FieldRepeated] != uint64(999) || fields[FieldFirstID] != uint64(1) || fields[FieldLastID] != uint64(1000) ||
		fields[FieldSource] != "10.0.0.1" || fields[FieldHost] != "evil.test" || fields[FieldReason] != string(vocab.ReasonNotInRegistry) {
		t.Errorf("summary fields %v", fields)
	}
	if rep[0].Level != zap.WarnLevel {
		t.Errorf("summary level %s", rep[0].Level)
	}
	f.Consume(denial(1001, "evil.test", "10.0.0.1:9999"))
	if n := logs.FilterMessage(MsgDenied).Len(); n != 2 {
		t.Errorf("a new window logs the denial again: %d lines", n)
	}
}

// TestFoldingKeepsDistinctDenials: another host, source address, port or
// reason is another line.
func TestFoldingKeepsDistinctDenials(t *testing.T) {
	f, logs, _ := newFolding(time.Second, 0)
	base := denial(1, "evil.test", "10.0.0.1:5000")
	f.Consume(base)
	otherHost := denial(2, "other.test", "10.0.0.1:5000")
	otherSource := denial(3, "evil.test", "10.0.0.2:5000")
	otherPort := *base
	otherPort.ID, otherPort.Layer, otherPort.Port = 4, vocab.LayerHTTP, 80
	otherReason := *base
	otherReason.ID, otherReason.Reason = 5, vocab.ReasonBlockedAddress
	audit := *base
	audit.ID, audit.Verdict = 6, vocab.VerdictAuditDeny
	for _, d := range []*Decision{otherHost, otherSource, &otherPort, &otherReason, &audit} {
		f.Consume(d)
	}
	got := messages(logs)
	if got[MsgDenied] != 5 || got[MsgAuditDenied] != 1 {
		t.Errorf("lines %v", got)
	}
	allowed := *base
	allowed.ID, allowed.Verdict, allowed.Reason = 7, vocab.VerdictAllow, vocab.ReasonAllowed
	f.Consume(&allowed)
	if len(logs.All()) != 6 {
		t.Error("allowed decisions are not logged")
	}
}

// TestFoldingLineBudget: past MaxLines distinct denials per window, the
// rest are folded into one summary per layer, verdict and reason.
func TestFoldingLineBudget(t *testing.T) {
	f, logs, clock := newFolding(time.Second, 3)
	for i := range 10 {
		f.Consume(denial(uint64(i+1), fmt.Sprintf("h%d.test", i), "10.0.0.1:5000"))
	}
	if n := logs.FilterMessage(MsgDenied).Len(); n != 3 {
		t.Fatalf("%d lines, want the budget of 3", n)
	}
	clock.add(time.Second)
	f.Flush()
	folded := logs.FilterMessage(MsgFolded).All()
	if len(folded) != 1 {
		t.Fatalf("lines %v", messages(logs))
	}
	fields := folded[0].ContextMap()
	if fields[FieldFolded] != uint64(7) || fields[FieldFirstID] != uint64(4) || fields[FieldLastID] != uint64(10) || fields[FieldLayer] != string(vocab.LayerDNS) {
		t.Errorf("folded fields %v", fields)
	}
	f.Consume(denial(11, "h99.test", "10.0.0.1:5000"))
	if n := logs.FilterMessage(MsgDenied).Len(); n != 4 {
		t.Errorf("a new window has a new budget: %d lines", n)
	}
}

// TestFoldingStartFlushesQuietKeys: summaries come without further
// denials, and on shutdown.
func TestFoldingStartFlushesQuietKeys(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := NewFoldingLogger(zap.New(core), FoldConfig{Window: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Start(ctx) }()
	f.Consume(denial(1, "evil.test", "10.0.0.1:1"))
	f.Consume(denial(2, "evil.test", "10.0.0.1:2"))
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage(MsgRepeated).Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if logs.FilterMessage(MsgRepeated).Len() != 1 {
		t.Fatal("no summary after the window")
	}
	f.Consume(denial(3, "evil.test", "10.0.0.1:3"))
	f.Consume(denial(4, "evil.test", "10.0.0.1:4"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage(MsgRepeated).Len() != 2 {
		t.Errorf("the open window's summary must be written on shutdown: %v", messages(logs))
	}
}
