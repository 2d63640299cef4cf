package origination

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// env is a Store under test: a cert dir, a fake clock, observed logs, a
// private registry and a channel of OnChange calls.
type env struct {
	dir     string
	s       *Store
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	now     atomic.Int64 // UnixNano
	changes chan struct{}
}

func newEnv(t *testing.T, resync time.Duration) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), reg: prometheus.NewRegistry(), changes: make(chan struct{}, 64)}
	e.setNow(t0)
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	e.s = NewStore(StoreConfig{
		CertDir:    e.dir,
		Log:        zap.New(core),
		Registerer: e.reg,
		Resync:     resync,
		OnChange: func() {
			select {
			case e.changes <- struct{}{}:
			default:
			}
		},
		Now: func() time.Time { return time.Unix(0, e.now.Load()).UTC() },
	})
	t.Cleanup(func() { checkLogsHoldNoKey(t, logs) })
	return e
}

func (e *env) setNow(t time.Time) { e.now.Store(t.UnixNano()) }

// run runs the store until the test ends.
func (e *env) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx) }()
	// Run logs this once its folders are watched and its first reload done.
	eventually(t, 5*time.Second, "Run started", func() bool { return len(e.messages("watching tls secret files")) > 0 })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitChange waits for OnChange.
func (e *env) waitChange(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-e.changes:
	case <-time.After(within):
		t.Fatalf("OnChange not called within %v", within)
	}
}

// drainChanges forgets OnChange calls so far.
func (e *env) drainChanges() {
	for {
		select {
		case <-e.changes:
		default:
			return
		}
	}
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of the series of a gauge or counter family
// whose label has the given value, and whether there is one.
func (e *env) metric(t *testing.T, family, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if g := m.GetGauge(); g != nil {
						return g.GetValue(), true
					}
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// reloadErrors is egressd_cert_reloads_total{result="error"}.
func (e *env) reloadErrors(t *testing.T) float64 {
	t.Helper()
	v, _ := e.metric(t, "egressd_cert_reloads_total", "result", resultError)
	return v
}

// messages returns the logged entries with the given message.
func (e *env) messages(msg string) []observer.LoggedEntry {
	return e.logs.FilterMessage(msg).All()
}

// checkLogsHoldNoKey fails the test if any log line, encoded as in
// production, carries private key material.
func checkLogsHoldNoKey(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, l := range logs.All() {
		buf, err := enc.EncodeEntry(l.Entry, l.Context)
		if err != nil {
			t.Fatal(err)
		}
		if leaks(buf.String()) {
			t.Errorf("log line reveals a private key: %s", buf.String())
		}
		buf.Free()
	}
}
