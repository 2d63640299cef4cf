package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Request says what certificate to issue: the identity, its lifetime and
// the DNS names and IP addresses a server certificate also answers to.
type Request struct {
	Namespace, ServiceAccount string
	// TTL is the lifetime, DefaultTTL when <= 0.
	TTL      time.Duration
	DNSNames []string
	IPs      []netip.Addr
}

// Issued is one certificate as issued: the chain (leaf first, then the CA
// chain without the root) and the key as PEM, the parsed leaf, and the
// trust bundle that verifies it. Its String never prints the key.
type Issued struct {
	ChainPEM, KeyPEM []byte
	Leaf             *x509.Certificate
	BundlePEM        []byte
}

// String describes the certificate without its key.
func (i Issued) String() string {
	if i.Leaf == nil {
		return "no certificate"
	}
	id := ""
	if len(i.Leaf.URIs) > 0 {
		id = i.Leaf.URIs[0].String()
	}
	return fmt.Sprintf("certificate %s (serial %x, valid until %s)", id, i.Leaf.SerialNumber, i.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so that %#v prints no key either.
func (i Issued) GoString() string { return i.String() }

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	// CA issues the certificates; required.
	CA *CA
	// Request is the certificate to keep; its identity is required.
	Request Request
	// Name says what the certificate is for, in log lines
	// ("<Name> certificate renewed") and as the certificate label of
	// egressd_certificate_expiry_timestamp_seconds. Required.
	Name string
	// OnChange, when set, is called from Run's goroutine after each
	// renewal with the new certificate (not for the first, issued by
	// NewKeeper).
	OnChange func(Issued)
	// Expiry, when set, is also set to each certificate's NotAfter.
	Expiry prometheus.Gauge
	// Log receives issues, renewals and failures; nil means none.
	Log *zap.Logger
	// Registerer gets egressd_certificate_expiry_timestamp_seconds; nil
	// means it is not registered.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Keeper keeps one certificate fresh: it issues it, renews it when half
// of its lifetime has passed, and hands each renewal to OnChange. Its
// methods are safe for concurrent use.
type Keeper struct {
	cfg    KeeperConfig
	log    *zap.Logger
	expiry prometheus.Gauge

	mu      sync.RWMutex
	current Issued
	renewAt time.Time
}

// NewKeeper checks cfg and issues the first certificate.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	if cfg.CA == nil {
		return nil, errors.New("certificate keeper: no CA")
	}
	if cfg.Name == "" {
		return nil, errors.New("certificate keeper: no name")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Request.TTL <= 0 {
		cfg.Request.TTL = DefaultTTL
	}
	k := &Keeper{cfg: cfg, log: cfg.Log, expiry: expiryGauge(cfg.Registerer, cfg.Name, cfg.Log)}
	if err := k.renew(cfg.Now()); err != nil {
		return nil, fmt.Errorf("%s certificate %s: %w", cfg.Name, SPIFFEID(cfg.CA.TrustDomain(), cfg.Request.Namespace, cfg.Request.ServiceAccount), err)
	}
	k.log.Info(cfg.Name+" certificate issued", k.fields()...)
	return k, nil
}

// Current returns the certificate now in use.
func (k *Keeper) Current() Issued {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Run renews the certificate when half of its lifetime has passed, until
// ctx ends, and calls OnChange after each renewal. A failed renewal is
// logged and retried a minute later; the current certificate stays in use
// meanwhile. It returns nil when ctx ends. Call it once.
func (k *Keeper) Run(ctx context.Context) error {
	var retryAt, loggedAt time.Time
	var lastErr string
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := k.cfg.Now()
		due := k.due()
		if !retryAt.IsZero() {
			due = retryAt
		}
		if !now.Before(due) {
			if err := k.renew(now); err != nil {
				retryAt = now.Add(recheckInterval)
				if err.Error() != lastErr || now.Sub(loggedAt) >= failureLogInterval {
					lastErr, loggedAt = err.Error(), now
					k.log.Error(k.cfg.Name+" certificate renewal failed; serving the current one",
						append(k.fields(), zap.Time(keyServingUntil, k.Current().Leaf.NotAfter), zap.Error(err))...)
				}
				continue
			}
			retryAt, lastErr = time.Time{}, ""
			k.log.Info(k.cfg.Name+" certificate renewed", k.fields()...)
			if k.cfg.OnChange != nil {
				k.cfg.OnChange(k.Current())
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

// renew issues a certificate at now and makes it the current one.
func (k *Keeper) renew(now time.Time) error {
	chain, key, leaf, err := k.cfg.CA.issueFor(now, k.cfg.Request)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current = Issued{ChainPEM: chain, KeyPEM: key, Leaf: leaf, BundlePEM: k.cfg.CA.BundlePEM()}
	// At half the lifetime; not sooner than minRenewal, so that a
	// certificate capped at an expiring CA does not make Run spin.
	k.renewAt = now.Add(max(leaf.NotAfter.Sub(now)/2, minRenewal))
	k.mu.Unlock()
	k.expiry.Set(float64(leaf.NotAfter.Unix()))
	if k.cfg.Expiry != nil {
		k.cfg.Expiry.Set(float64(leaf.NotAfter.Unix()))
	}
	return nil
}

// due returns when the current certificate is to be renewed.
func (k *Keeper) due() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.renewAt
}

// fields describes the current certificate for logs: never key material.
func (k *Keeper) fields() []zap.Field {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return []zap.Field{
		zap.String(keyPrincipal, Principal(k.cfg.CA.TrustDomain(), k.cfg.Request.Namespace, k.cfg.Request.ServiceAccount)),
		zap.String(keySerial, fmt.Sprintf("%x", k.current.Leaf.SerialNumber)),
		zap.Time(keyNotAfter, k.current.Leaf.NotAfter),
		zap.Time(keyRenewAt, k.renewAt),
	}
}

// expiryVec is egressd_certificate_expiry_timestamp_seconds{certificate}.
var expiryVec = func() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "egressd_certificate_expiry_timestamp_seconds",
		Help: "NotAfter of each certificate egressd issues and renews from its mesh CA (certificate: gateway, xds-server, xds-client), as a Unix time; each is renewed at half its lifetime.",
	}, []string{"certificate"})
}

// expiryGauge is name's series of egressd_certificate_expiry_timestamp_seconds
// on reg (shared with other keepers there), or a free-standing gauge.
func expiryGauge(reg prometheus.Registerer, name string, log *zap.Logger) prometheus.Gauge {
	vec := expiryVec()
	if reg != nil {
		vec = register(reg, vec, log)
	}
	return vec.WithLabelValues(name)
}
