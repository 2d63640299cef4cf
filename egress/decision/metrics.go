package decision

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTopN is how many destinations MetricsConfig exports when TopN is
// not set.
const DefaultTopN = 20

// MetricsConfig configures the metrics consumer.
type MetricsConfig struct {
	// Registerer gets the collectors; nil means none are registered (the
	// consumer still counts, which tests and benchmarks use).
	Registerer prometheus.Registerer
	// TopN is how many destinations egressd_top_denied_destinations
	// exports; DefaultTopN when <= 0.
	TopN int
}

// NewMetrics returns a Consumer maintaining two collectors:
//
//   - egressd_decisions_total{layer,verdict,reason}, a counter of every
//     decision. Label values outside the Layer*, Verdict* and Reason*
//     constants are replaced by "unknown", so the series are bounded.
//   - egressd_top_denied_destinations{destination}, a gauge of the
//     destinations (host:port, or the host alone for DNS) with the most
//     deny and audit-deny decisions. A Space-Saving counter tracking
//     10*TopN destinations estimates the counts in fixed memory, and each
//     scrape emits only the current TopN, so there are never more than
//     TopN series. The values are estimates: never below the true count,
//     above it by at most the smallest count tracked when the destination
//     was last taken in; a destination leaving the top N has its series
//     disappear.
//
// It panics if registering fails, as prometheus.MustRegister does.
func NewMetrics(cfg MetricsConfig) Consumer {
	if cfg.TopN <= 0 {
		cfg.TopN = DefaultTopN
	}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_decisions_total",
			Help: "Decisions, by layer (dns, http, tls, tcp), verdict (allow, deny, audit-deny) and reason.",
		}, []string{"layer", "verdict", "reason"}),
		byLabels: map[[3]string]prometheus.Counter{},
		top: &topDestinations{
			desc: prometheus.NewDesc("egressd_top_denied_destinations",
				"Estimated deny and audit-deny decisions of the most denied destinations (host:port, or host for DNS) since start; only the current top N are exported.",
				[]string{"destination"}, nil),
			n:      cfg.TopN,
			counts: newSpaceSaving(10 * cfg.TopN),
		},
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.decisions, m.top)
	}
	return m
}

// metrics is the Consumer NewMetrics returns.
type metrics struct {
	decisions *prometheus.CounterVec
	// byLabels caches the children of decisions; consumer goroutine only.
	byLabels map[[3]string]prometheus.Counter
	top      *topDestinations
}

// Consume implements Consumer.
func (m *metrics) Consume(d *Decision) {
	labels := [3]string{string(d.Layer), string(d.Verdict), string(d.Reason)}
	c, ok := m.byLabels[labels]
	if !ok {
		bounded := [3]string{known(d.Layer), known(d.Verdict), known(d.Reason)}
		c = m.decisions.WithLabelValues(bounded[:]...)
		if bounded == labels { // cache known values only, so the cache is bounded too
			m.byLabels[labels] = c
		}
	}
	c.Add(float64(d.Requests()))
	if d.Denied() {
		m.top.add(d)
	}
}

// topDestinations is the collector of egressd_top_denied_destinations.
type topDestinations struct {
	desc *prometheus.Desc
	n    int

	mu     sync.Mutex
	counts *spaceSaving
	buf    []byte // key scratch space, guarded by mu
}

// add counts one denied decision for its destination.
func (t *topDestinations) add(d *Decision) {
	t.mu.Lock()
	t.buf = appendDestination(t.buf[:0], d)
	t.counts.add(t.buf)
	t.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (t *topDestinations) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

// Collect implements prometheus.Collector.
func (t *topDestinations) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	top := t.counts.top(t.n)
	t.mu.Unlock()
	for _, e := range top {
		// An error here means a key that is not valid UTF-8: skip it
		// rather than fail the scrape.
		if m, err := prometheus.NewConstMetric(t.desc, prometheus.GaugeValue, float64(e.count), e.key); err == nil {
			ch <- m
		}
	}
}
