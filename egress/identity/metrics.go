package identity

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// metrics are the gateway's collectors.
type metrics struct {
	expiry prometheus.Gauge // egressd_gateway_cert_expiry_timestamp_seconds
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egressd_gateway_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the gateway's own workload certificate (SPIFFE SVID), as a Unix time; it is renewed at half its lifetime, so alert when this minus time() falls below half the TTL.",
		}),
	}
	if reg != nil {
		m.expiry = register(reg, m.expiry, log)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second Gateway on one registry shares the series).
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
	log.Error("registering gateway certificate metrics", zap.Error(err))
	return c
}
