package decision

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// benchSyncEvery bounds how far publishers run ahead of the consumers:
// every so many decisions the publisher waits (Sync) for them to be
// consumed, so no queue overflows and drops cannot flatter the figures.
const benchSyncEvery = 8192

// benchTemplates is a mix of decisions: 70% allowed, 20% denied, 10%
// audit-denied, over 500 hosts, some in redirect chains.
var benchTemplates = func() []Decision {
	out := make([]Decision, 1000)
	for i := range out {
		d := Decision{
			Layer:    []vocab.Layer{vocab.LayerHTTP, vocab.LayerTLS, vocab.LayerDNS, vocab.LayerTCP}[i%4],
			Verdict:  vocab.VerdictAllow,
			Reason:   vocab.ReasonAllowed,
			Source:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i)}), uint16(30000+i)),
			Identity: "shop/checkout",
			Host:     fmt.Sprintf("svc%d.example.com", i%500),
			Port:     443,
			Protocol: "HTTP/1.1",
			Upstream: "192.0.2.10:443",
		}
		switch {
		case i%10 < 2:
			d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonNotInRegistry
		case i%10 == 2:
			d.Verdict, d.Reason = vocab.VerdictAuditDeny, vocab.ReasonNotInRegistry
		}
		if i%50 == 0 {
			d.Chain = &Chain{ID: fmt.Sprint("chain-", i), Hop: 1, Hops: []Hop{
				{URL: "http://a.example.com/", Host: "a.example.com", Status: 302, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed},
				{URL: "http://" + d.Host + "/", Host: d.Host, Verdict: d.Verdict, Reason: d.Reason},
			}}
		}
		out[i] = d
	}
	return out
}()

// benchStream wires a stream with the three real consumers: the store,
// the metrics (registered) and the logger (JSON to io.Discard).
func benchStream(b *testing.B) (*Stream, func()) {
	reg := prometheus.NewRegistry()
	s := NewStream(StreamConfig{Registerer: reg})
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	s.Add("store", 65536, NewStore(StoreConfig{}))
	s.Add("metrics", 65536, NewMetrics(MetricsConfig{Registerer: reg}))
	s.Add("log", 65536, NewLogger(zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	return s, func() { cancel(); <-done }
}

// reportDelivery reports throughput and every drop the run had.
func reportDelivery(b *testing.B, s *Stream) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	var drops uint64
	for _, c := range []string{DropStream, "store", "metrics", "log"} {
		drops += s.Dropped(c)
	}
	b.ReportMetric(float64(drops), "drops")
}

// benchSync is Sync for benchmarks.
func benchSync(b *testing.B, s *Stream) {
	if err := s.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPublish measures one publisher's decisions delivered to all
// three consumers: the timer covers publishing and, through Sync,
// consuming. One allocation per op is the Decision the publisher makes.
func BenchmarkPublish(b *testing.B) {
	s, stop := benchStream(b)
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d := new(Decision)
		*d = benchTemplates[i%len(benchTemplates)]
		for !s.Publish(d) { // never with the Sync below; kept honest anyway
			benchSync(b, s)
		}
		if i%benchSyncEvery == benchSyncEvery-1 {
			benchSync(b, s)
		}
	}
	benchSync(b, s)
	b.StopTimer()
	reportDelivery(b, s)
}

// BenchmarkConsumersDirect is the baseline of BenchmarkPublish: the same
// decisions handed to the same three consumers by direct calls on one
// goroutine, without a stream. The ratio of the two is what the stream's
// queues, goroutines and IDs cost.
func BenchmarkConsumersDirect(b *testing.B) {
	reg := prometheus.NewRegistry()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	consumers := []Consumer{
		NewStore(StoreConfig{}),
		NewMetrics(MetricsConfig{Registerer: reg}),
		NewLogger(zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel))),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d := new(Decision)
		*d = benchTemplates[i%len(benchTemplates)]
		d.ID = uint64(i + 1)
		for _, c := range consumers {
			c.Consume(d)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishParallel is BenchmarkPublish with GOMAXPROCS
// publishers.
func BenchmarkPublishParallel(b *testing.B) {
	s, stop := benchStream(b)
	defer stop()
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			d := new(Decision)
			*d = benchTemplates[i%uint64(len(benchTemplates))]
			for !s.Publish(d) {
				benchSync(b, s)
			}
			if i%benchSyncEvery == 0 {
				benchSync(b, s)
			}
		}
	})
	benchSync(b, s)
	b.StopTimer()
	reportDelivery(b, s)
}

// BenchmarkStoreQuery measures queries over a full store (50000 denied,
// 10000 allowed decisions).
func BenchmarkStoreQuery(b *testing.B) {
	st := NewStore(StoreConfig{})
	for i := range DefaultStoreCapacity + DefaultAllowedCapacity*3 {
		d := new(Decision)
		*d = benchTemplates[i%len(benchTemplates)]
		d.ID = uint64(i + 1)
		st.Consume(d)
	}
	for name, q := range map[string]Query{
		"newest 100":            {},
		"denied, host wildcard": {Verdicts: []vocab.Verdict{vocab.VerdictDeny}, Host: "*.example.com"},
		"tail after_id":         {AfterID: DefaultStoreCapacity + DefaultAllowedCapacity*3 - 10},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(st.Query(q)) == 0 {
					b.Fatal("no results")
				}
			}
		})
	}
}
