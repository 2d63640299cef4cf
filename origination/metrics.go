package origination

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Result label values of egressd_cert_reloads_total.
const (
	resultOK    = "ok"
	resultError = "error"
)

// metrics are the store's collectors. The secret label takes the names of
// the client secrets currently wanted, so it is bounded by configuration.
type metrics struct {
	expiry   *prometheus.GaugeVec   // egressd_client_cert_expiry_timestamp_seconds{secret}
	reloads  *prometheus.CounterVec // egressd_cert_reloads_total{result}
	reloadOK prometheus.Counter
	reloadKO prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "egressd_client_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the leaf certificate served for each client certificate secret, as a Unix time; alert on it minus time().",
		}, []string{"secret"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_cert_reloads_total",
			Help: "TLS secret loads, by result: ok (new content accepted, first loads included), error (load failed; the last good material, if any, is kept).",
		}, []string{"result"}),
	}
	if reg != nil {
		m.expiry = register(reg, m.expiry, log)
		m.reloads = register(reg, m.reloads, log)
	}
	m.reloadOK = m.reloads.WithLabelValues(resultOK)
	m.reloadKO = m.reloads.WithLabelValues(resultError)
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second Store on one registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *zap.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Error("registering TLS secret metrics", zap.Error(err))
	return c
}
