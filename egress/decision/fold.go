package decision

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Log messages of folded lines.
const (
	// MsgRepeated is the summary of identical denials folded into the line
	// of the first one.
	MsgRepeated = "egress denials repeated"
	// MsgFolded is the summary of denials not logged at all because the
	// window's line budget was spent.
	MsgFolded = "egress denials folded"
)

// Log field keys of the summary lines.
const (
	FieldRepeated      = "repeated"       // how many more identical denials there were
	FieldFolded        = "folded"         // how many denials went unlogged (MsgFolded)
	FieldWindowSeconds = "window_seconds" // the folding window
	FieldFirstID       = "first_decision_id"
	FieldLastID        = "last_decision_id"
)

// FoldConfig bounds the decision log under a flood.
type FoldConfig struct {
	// Window: the line of a denial is written once per window for the
	// same layer, verdict, reason, source address (without its port),
	// host and port; the others are counted, and when the window ends one
	// MsgRepeated line says how many there were. 0 writes every line.
	Window time.Duration
	// MaxLines bounds the lines written per window (not counting the
	// summaries). Denials past it are counted by layer, verdict and
	// reason and summed up in MsgFolded lines when the window ends.
	// Default 1000; it has no effect when Window is 0.
	MaxLines int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultFoldMaxLines is FoldConfig.MaxLines when it is left 0.
const DefaultFoldMaxLines = 1000

// NewFoldingLogger returns the log Consumer of NewLogger with folding: see
// FoldConfig. Every denial is still counted and stored by the other
// consumers; only its log line is folded. Start must run for the
// summaries of quiet keys to be written.
func NewFoldingLogger(log *zap.Logger, cfg FoldConfig) *FoldingLogger {
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = DefaultFoldMaxLines
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &FoldingLogger{line: logger{log: log}, log: log, cfg: cfg, keys: map[foldKey]*foldItem{}, folded: map[overflowKey]uint64{}}
}

// FoldingLogger is the Consumer NewFoldingLogger returns.
type FoldingLogger struct {
	line logger
	log  *zap.Logger
	cfg  FoldConfig

	mu sync.Mutex
	// keys are the denials logged in their window; queue holds them in
	// the order their windows started (and so end).
	keys  map[foldKey]*foldItem
	queue []foldKey
	// budget: lines written in the window that started at budgetStart.
	budgetStart time.Time
	budgetUsed  int
	folded      map[overflowKey]uint64
	foldedFirst uint64 // first decision id folded in this budget window
	foldedLast  uint64
}

// foldKey is what makes two denials "identical" for the log.
type foldKey struct {
	layer   vocab.Layer
	verdict vocab.Verdict
	reason  vocab.Reason
	host    string
	source  netip.Addr
	port    uint32
}

type foldItem struct {
	start           time.Time
	repeated        uint64
	firstID, lastID uint64
}

type overflowKey struct {
	layer   vocab.Layer
	verdict vocab.Verdict
	reason  vocab.Reason
}

// Consume implements Consumer.
func (f *FoldingLogger) Consume(d *Decision) {
	if !d.Denied() {
		return
	}
	if f.cfg.Window <= 0 {
		f.line.Consume(d)
		return
	}
	now := f.cfg.Now()
	f.mu.Lock()
	f.expire(now)
	k := foldKey{layer: d.Layer, verdict: d.Verdict, reason: d.Reason, host: d.Host, source: d.Source.Addr(), port: d.Port}
	if it, ok := f.keys[k]; ok {
		it.repeated++
		it.lastID = d.ID
		f.mu.Unlock()
		return
	}
	if now.Sub(f.budgetStart) >= f.cfg.Window {
		f.flushFolded()
		f.budgetStart, f.budgetUsed = now, 0
	}
	if f.budgetUsed >= f.cfg.MaxLines {
		o := overflowKey{d.Layer, d.Verdict, d.Reason}
		f.folded[o]++
		if f.foldedFirst == 0 {
			f.foldedFirst = d.ID
		}
		f.foldedLast = d.ID
		f.mu.Unlock()
		return
	}
	f.budgetUsed++
	f.keys[k] = &foldItem{start: now, firstID: d.ID, lastID: d.ID}
	f.queue = append(f.queue, k)
	f.mu.Unlock()
	// One goroutine consumes: the line can be written outside the lock.
	f.line.Consume(d)
}

// expire writes the summaries of the keys whose window ended by now and
// forgets them. f.mu held.
func (f *FoldingLogger) expire(now time.Time) {
	n := 0
	for _, k := range f.queue {
		it := f.keys[k]
		if now.Sub(it.start) < f.cfg.Window {
			break
		}
		if it.repeated > 0 {
			f.repeatedLine(k, it)
		}
		delete(f.keys, k)
		n++
	}
	if n > 0 {
		clear(f.queue[:n])
		f.queue = f.queue[n:]
	}
	if f.budgetUsed > 0 && now.Sub(f.budgetStart) >= f.cfg.Window {
		f.flushFolded()
		f.budgetStart, f.budgetUsed = now, 0
	}
}

func (f *FoldingLogger) repeatedLine(k foldKey, it *foldItem) {
	level, _ := levelOf(k.verdict)
	ce := f.log.Check(level, MsgRepeated)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String(FieldLayer, string(k.layer)), zap.String(FieldVerdict, string(k.verdict)), zap.String(FieldReason, string(k.reason)),
		zap.Uint64(FieldRepeated, it.repeated), zap.Float64(FieldWindowSeconds, f.cfg.Window.Seconds()),
		zap.Uint64(FieldFirstID, it.firstID), zap.Uint64(FieldLastID, it.lastID),
	}
	if k.host != "" {
		fields = append(fields, zap.String(FieldHost, k.host))
	}
	if k.port != 0 {
		fields = append(fields, zap.Uint32(FieldPort, k.port))
	}
	if k.source.IsValid() {
		fields = append(fields, zap.String(FieldSource, k.source.String()))
	}
	ce.Write(fields...)
}

// flushFolded writes one MsgFolded line per layer, verdict and reason of
// the denials the spent budget left unlogged. f.mu held.
func (f *FoldingLogger) flushFolded() {
	for o, n := range f.folded {
		level, _ := levelOf(o.verdict)
		if ce := f.log.Check(level, MsgFolded); ce != nil {
			ce.Write(zap.String(FieldLayer, string(o.layer)), zap.String(FieldVerdict, string(o.verdict)), zap.String(FieldReason, string(o.reason)),
				zap.Uint64(FieldFolded, n), zap.Float64(FieldWindowSeconds, f.cfg.Window.Seconds()),
				zap.Uint64(FieldFirstID, f.foldedFirst), zap.Uint64(FieldLastID, f.foldedLast))
		}
	}
	clear(f.folded)
	f.foldedFirst, f.foldedLast = 0, 0
}

// Flush writes the summaries of every window that ended by now.
func (f *FoldingLogger) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire(f.cfg.Now())
}

// Start writes the summaries of ended windows every tenth of a window
// until ctx ends, then those of every window still open. It returns nil.
func (f *FoldingLogger) Start(ctx context.Context) error {
	if f.cfg.Window <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(max(f.cfg.Window/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.expire(f.cfg.Now().Add(f.cfg.Window))
			f.mu.Unlock()
			return nil
		case <-tick.C:
			f.Flush()
		}
	}
}

// levelOf is the log level and message of a denial's line.
func levelOf(verdict vocab.Verdict) (zapcore.Level, string) {
	if verdict == vocab.VerdictAuditDeny {
		return zap.InfoLevel, MsgAuditDenied
	}
	return zap.WarnLevel, MsgDenied
}
