package dnsproxy

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	queryBy    map[[2]string]prometheus.Counter
	durationBy map[string]prometheus.Observer
}

// reasonsByVerdict lists every label pair egressd_dns_queries_total uses.
var reasonsByVerdict = map[string][]string{
	VerdictAllow:     {ReasonAllowed, ReasonPassthrough, ReasonAllowAny, ReasonCNAMEToUnlisted, ReasonBlockedAddress},
	VerdictDeny:      {ReasonNotInRegistry, ReasonBlockedAddress, ReasonUpstreamError, ReasonNotReady, ReasonMalformed},
	VerdictAuditDeny: {ReasonNotInRegistry},
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
		queryBy:    map[[2]string]prometheus.Counter{},
		durationBy: map[string]prometheus.Observer{},
	}
	for verdict, reasons := range reasonsByVerdict {
		m.durationBy[verdict] = m.duration.WithLabelValues(verdict)
		for _, reason := range reasons {
			m.queryBy[[2]string{verdict, reason}] = m.queries.WithLabelValues(verdict, reason)
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
func (m *metrics) count(verdict, reason string) {
	if c, ok := m.queryBy[[2]string{verdict, reason}]; ok {
		c.Inc()
		return
	}
	m.queries.WithLabelValues(verdict, reason).Inc()
}

// observe records how long one query took, reply written.
func (m *metrics) observe(verdict string, d time.Duration) {
	if o, ok := m.durationBy[verdict]; ok {
		o.Observe(d.Seconds())
	}
}
