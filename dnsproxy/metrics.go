package dnsproxy

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// metrics are the DNS proxy's collectors (named egressd_<subsystem>_*,
// "dns" by default, shown below). Label values come from fixed
// sets (verdicts, reasons, transports, results), never from query names or
// client addresses, so the series count is bounded.
type metrics struct {
	queries  *prometheus.CounterVec   // egressd_dns_queries_total{verdict,reason}
	duration *prometheus.HistogramVec // egressd_dns_request_duration_seconds{verdict}
	upstream *prometheus.CounterVec   // egressd_dns_upstream_requests_total{transport,result}
	cache    *prometheus.CounterVec   // egressd_dns_cache_lookups_total{result}
	entries  prometheus.GaugeFunc     // egressd_dns_cache_entries
	vips     prometheus.Gauge         // egressd_dns_vips_allocated

	// Children bound once, so the query path does no label lookups.
	queryBy    map[queryLabels]prometheus.Counter
	durationBy map[vocab.Verdict]prometheus.Observer
}

// queryLabels are the labels of one egressd_dns_queries_total series.
type queryLabels struct {
	verdict vocab.Verdict
	reason  vocab.Reason
}

// reasonsByVerdict lists every label pair egressd_dns_queries_total uses.
var reasonsByVerdict = map[vocab.Verdict][]vocab.Reason{
	vocab.VerdictAllow:     {vocab.ReasonAllowed, vocab.ReasonPassthrough, vocab.ReasonAllowAny, vocab.ReasonCNAMEToUnlisted, vocab.ReasonBlockedAddress},
	vocab.VerdictDeny:      {vocab.ReasonNotInRegistry, vocab.ReasonBlockedAddress, vocab.ReasonUpstreamError, vocab.ReasonNotReady, vocab.ReasonMalformed},
	vocab.VerdictAuditDeny: {vocab.ReasonNotInRegistry},
}

func newMetrics(reg prometheus.Registerer, subsystem string, cacheLen func() int) (*metrics, error) {
	name := func(n string) string { return "egressd_" + subsystem + "_" + n }
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("queries_total"),
			Help: "DNS queries answered, by verdict (allow, deny) and reason.",
		}, []string{"verdict", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    name("request_duration_seconds"),
			Help:    "Time from receiving a DNS query to writing its answer, by verdict.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"verdict"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("upstream_requests_total"),
			Help: "Requests to upstream resolvers, by transport (udp, tcp) and result (ok, truncated, servfail: SERVFAIL or REFUSED, error: no or a mismatched answer).",
		}, []string{"transport", "result"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("cache_lookups_total"),
			Help: "Response cache lookups, by result (hit, miss).",
		}, []string{"result"}),
		entries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: name("cache_entries"),
			Help: "Responses held in the cache.",
		}, func() float64 { return float64(cacheLen()) }),
		vips: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: name("vips_allocated"),
			Help: "Hosts with an auto-allocated VIP in the current allowlist.",
		}),
		queryBy:    map[queryLabels]prometheus.Counter{},
		durationBy: map[vocab.Verdict]prometheus.Observer{},
	}
	for verdict, reasons := range reasonsByVerdict {
		m.durationBy[verdict] = m.duration.WithLabelValues(string(verdict))
		for _, reason := range reasons {
			m.queryBy[queryLabels{verdict, reason}] = m.queries.WithLabelValues(string(verdict), string(reason))
		}
	}
	for _, t := range []string{"udp", "tcp"} {
		for _, r := range []string{"ok", "truncated", "servfail", "error"} {
			m.upstream.WithLabelValues(t, r)
		}
	}
	m.cache.WithLabelValues("hit")
	m.cache.WithLabelValues("miss")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.duration, m.upstream, m.cache, m.entries, m.vips} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering DNS metrics: %w", err)
			}
		}
	}
	return m, nil
}

// count counts one answered query.
func (m *metrics) count(verdict vocab.Verdict, reason vocab.Reason) {
	if c, ok := m.queryBy[queryLabels{verdict, reason}]; ok {
		c.Inc()
		return
	}
	m.queries.WithLabelValues(string(verdict), string(reason)).Inc()
}

// observe records how long one query took, reply written.
func (m *metrics) observe(verdict vocab.Verdict, d time.Duration) {
	if o, ok := m.durationBy[verdict]; ok {
		o.Observe(d.Seconds())
	}
}
