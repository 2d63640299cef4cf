package identity

import (
	"context"
	"errors"
	"fmt"
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
	keeper    *Keeper
	metrics   *metrics
	principal string
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
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if err := ValidateIdentity(cfg.CA.TrustDomain(), cfg.Namespace, cfg.ServiceAccount); err != nil {
		return nil, fmt.Errorf("gateway identity: %w", err)
	}
	g := &Gateway{
		metrics:   newMetrics(cfg.Registerer, cfg.Log),
		principal: Principal(cfg.CA.TrustDomain(), cfg.Namespace, cfg.ServiceAccount),
	}
	var onChange func(Issued)
	if cfg.OnChange != nil {
		onChange = func(Issued) { cfg.OnChange() }
	}
	k, err := NewKeeper(KeeperConfig{
		CA:         cfg.CA,
		Request:    Request{Namespace: cfg.Namespace, ServiceAccount: cfg.ServiceAccount, TTL: cfg.TTL},
		Name:       "gateway",
		OnChange:   onChange,
		Expiry:     g.metrics.expiry,
		Log:        cfg.Log,
		Registerer: cfg.Registerer,
		Now:        cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	g.keeper = k
	return g, nil
}

// Principal returns the gateway's identity in Istio's principal form,
// "<td>/ns/<ns>/sa/<sa>".
func (g *Gateway) Principal() string { return g.principal }

// Secrets returns the SDS secrets GatewayCertSecret and TrustBundleSecret,
// in that order, of the current certificate.
func (g *Gateway) Secrets() []*tlsv3.Secret {
	c := g.keeper.Current()
	return []*tlsv3.Secret{
		{
			Name: GatewayCertSecret,
			Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: inline(c.ChainPEM),
				PrivateKey:       inline(c.KeyPEM),
			}},
		},
		{
			Name: TrustBundleSecret,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(c.BundlePEM),
			}},
		},
	}
}

// String describes the gateway's identity and certificate without key
// material.
func (g *Gateway) String() string {
	c := g.keeper.Current()
	return fmt.Sprintf("gateway identity %s (certificate %x, valid until %s)",
		g.principal, c.Leaf.SerialNumber, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v prints no key material either.
func (g *Gateway) GoString() string { return g.String() }

// Run renews the certificate when half of its lifetime has passed, until
// ctx ends, and calls OnChange after each renewal (see Keeper.Run).
func (g *Gateway) Run(ctx context.Context) error { return g.keeper.Run(ctx) }

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}
