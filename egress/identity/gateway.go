package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The gateway's identity unless configured otherwise.
const (
	DefaultGatewayNamespace      = "egressd-system"
	DefaultGatewayServiceAccount = "egress-gateway"
)

// Names of the SDS secrets Gateway serves.
const (
	// GatewayCertSecret is the gateway's own certificate: a TlsCertificate
	// with the chain and the key inline.
	GatewayCertSecret = "egressd-mesh/gateway-cert"
	// TrustBundleSecret is the mesh's trust bundle: a ValidationContext
	// trusting the CA's roots inline. Names to accept (principals) are
	// set where it is used.
	TrustBundleSecret = "egressd-mesh/trust-bundle"
)

// Renewal timing.
const (
	// recheckInterval bounds how long Run sleeps before reading the clock
	// again, so that a suspended machine or a clock step does not delay a
	// renewal; it is also the delay before retrying a failed renewal.
	recheckInterval = time.Minute
	// failureLogInterval is how often an unchanged renewal failure is
	// logged again.
	failureLogInterval = time.Hour
	// minRenewal is the shortest time between two renewals.
	minRenewal = time.Second
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// CA issues the gateway's certificate; required.
	CA *CA
	// Namespace and ServiceAccount are the gateway's identity;
	// DefaultGatewayNamespace and DefaultGatewayServiceAccount when empty.
	Namespace, ServiceAccount string
	// TTL is the lifetime of each certificate, DefaultTTL when <= 0. A
	// certificate is renewed when half of its lifetime has passed.
	TTL time.Duration
	// OnChange, when set, is called from Run's goroutine after a renewal
	// changed Secrets, so egressd can push new SDS resources. It is not
	// called for the first certificate, issued by NewGateway.
	OnChange func()
	// Log receives issues, renewals and failures; nil means none.
	Log *zap.Logger
	// Registerer gets egressd_gateway_cert_expiry_timestamp_seconds; nil
	// means it is not registered.
	Registerer prometheus.Registerer
	// Now is the clock certificates are issued and renewed by; time.Now
	// when nil.
	Now func() time.Time
}

// Gateway keeps the egress gateway's own workload certificate (SVID) fresh
// and serves it, with the trust bundle, as SDS secrets. Its methods are
// safe for concurrent use.
type Gateway struct {
	cfg       GatewayConfig
	log       *zap.Logger
	metrics   *metrics
	principal string

	mu      sync.RWMutex // guards the fields below
	secrets []*tlsv3.Secret
	leaf    *x509.Certificate
	renewAt time.Time
}

// NewGateway checks cfg and issues the gateway's first certificate.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.CA == nil {
		return nil, errors.New("gateway identity: no CA")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultGatewayNamespace
	}
	if cfg.ServiceAccount == "" {
		cfg.ServiceAccount = DefaultGatewayServiceAccount
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := ValidateIdentity(cfg.CA.TrustDomain(), cfg.Namespace, cfg.ServiceAccount); err != nil {
		return nil, fmt.Errorf("gateway identity: %w", err)
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Log,
		metrics:   newMetrics(cfg.Registerer, cfg.Log),
		principal: Principal(cfg.CA.TrustDomain(), cfg.Namespace, cfg.ServiceAccount),
	}
	if err := g.renew(cfg.Now()); err != nil {
		return nil, fmt.Errorf("gateway identity %s: %w", g.principal, err)
	}
	g.log.Info("gateway certificate issued", g.fields()...)
	return g, nil
}

// Principal returns the gateway's identity in Istio's principal form,
// "<td>/ns/<ns>/sa/<sa>".
func (g *Gateway) Principal() string { return g.principal }

// Secrets returns the SDS secrets GatewayCertSecret and TrustBundleSecret,
// in that order. They hold the current certificate; callers must not
// modify them.
func (g *Gateway) Secrets() []*tlsv3.Secret {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.Clone(g.secrets)
}

// String describes the gateway's identity and certificate without key
// material.
func (g *Gateway) String() string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return fmt.Sprintf("gateway identity %s (certificate %x, valid until %s)",
		g.principal, g.leaf.SerialNumber, g.leaf.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v prints no key material either.
func (g *Gateway) GoString() string { return g.String() }

// Run renews the certificate when half of its lifetime has passed, until
// ctx ends, and calls OnChange after each renewal. A failed renewal is
// logged and retried a minute later; the current certificate is served
// meanwhile. It returns nil when ctx ends. Call it once.
func (g *Gateway) Run(ctx context.Context) error {
	var retryAt, loggedAt time.Time
	var lastErr string
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := g.cfg.Now()
		due := g.due()
		if !retryAt.IsZero() {
			due = retryAt
		}
		if !now.Before(due) {
			if err := g.renew(now); err != nil {
				retryAt = now.Add(recheckInterval)
				if err.Error() != lastErr || now.Sub(loggedAt) >= failureLogInterval {
					lastErr, loggedAt = err.Error(), now
					g.log.Error("gateway certificate renewal failed; serving the current one",
						append(g.fields(), zap.Time(keyServingUntil, g.notAfter()), zap.Error(err))...)
				}
				continue
			}
			retryAt, lastErr = time.Time{}, ""
			g.log.Info("gateway certificate renewed", g.fields()...)
			if g.cfg.OnChange != nil {
				g.cfg.OnChange()
			}
			continue
		}
		t := time.NewTimer(min(due.Sub(now), recheckInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// renew issues a certificate at now and makes it the one served.
func (g *Gateway) renew(now time.Time) error {
	chain, key, leaf, err := g.cfg.CA.issue(now, g.cfg.Namespace, g.cfg.ServiceAccount, g.cfg.TTL)
	if err != nil {
		return err
	}
	secrets := []*tlsv3.Secret{
		{
			Name: GatewayCertSecret,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inline(chain),
				PrivateKey:       inline(key),
			}},
		},
		{
			Name: TrustBundleSecret,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(g.cfg.CA.BundlePEM()),
			}},
		},
	}
	g.mu.Lock()
	g.secrets, g.leaf = secrets, leaf
	// At half the lifetime; not sooner than minRenewal, so that a
	// certificate capped at an expiring CA does not make Run spin.
	g.renewAt = now.Add(max(leaf.NotAfter.Sub(now)/2, minRenewal))
	g.mu.Unlock()
	g.metrics.expiry.Set(float64(leaf.NotAfter.Unix()))
	return nil
}

// due returns when the current certificate is to be renewed.
func (g *Gateway) due() time.Time {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.renewAt
}

// notAfter returns the current certificate's NotAfter.
func (g *Gateway) notAfter() time.Time {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.leaf.NotAfter
}

// fields describes the current certificate for logs: never key material.
func (g *Gateway) fields() []zap.Field {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return []zap.Field{
		zap.String(keyPrincipal, g.principal),
		zap.String(keySerial, fmt.Sprintf("%x", g.leaf.SerialNumber)),
		zap.Time(keyNotAfter, g.leaf.NotAfter),
		zap.Time(keyRenewAt, g.renewAt),
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}
