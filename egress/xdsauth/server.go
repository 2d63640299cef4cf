package xdsauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/egressd/egressd/egress/identity"
)

// Reasons a client is refused, the label values of
// egressd_xds_rejected_clients_total.
const (
	// ReasonPlaintext: the client did not speak TLS.
	ReasonPlaintext = "plaintext"
	// ReasonNoCertificate: the client presented no certificate.
	ReasonNoCertificate = "no_certificate"
	// ReasonUntrusted: the client's certificate does not chain to the mesh
	// CA (another CA, self-signed, expired).
	ReasonUntrusted = "untrusted_certificate"
	// ReasonNotAGateway: a certificate of the mesh CA whose identity is
	// not one of the gateway identities (a workload's, say).
	ReasonNotAGateway = "not_a_gateway"
	// ReasonHandshake: any other handshake failure (a timeout, a reset).
	ReasonHandshake = "handshake_failed"
)

var reasons = []string{ReasonPlaintext, ReasonNoCertificate, ReasonUntrusted, ReasonNotAGateway, ReasonHandshake}

// handshakeTimeout bounds one client's TLS handshake.
const handshakeTimeout = 10 * time.Second

// ServerConfig configures the control plane's transport credentials.
type ServerConfig struct {
	// Certificate is egressd's own certificate (a Keeper renews it); its
	// bundle is the CA clients' certificates must chain to. Required.
	Certificate *identity.Keeper
	// Gateways are the SPIFFE IDs allowed to connect: the gateway
	// identities. Required.
	Gateways []string
	// Log receives one line per refused client and reason (the first of
	// each identity or address); nil means none.
	Log *zap.Logger
	// Registerer gets egressd_xds_rejected_clients_total{reason}; nil
	// means it is not registered.
	Registerer prometheus.Registerer
}

// Credentials are gRPC transport credentials for egressd's xDS port:
// TLS 1.2 or later with egressd's certificate, and a client certificate
// required, chaining to the mesh CA and naming one of the gateway
// identities. Any other client is refused during the handshake, before a
// single request is read: it gets no configuration, no secret, and cannot
// send access-log entries.
type Credentials struct {
	cfg      ServerConfig
	rejected *prometheus.CounterVec

	mu     sync.Mutex
	logged map[string]bool // reason + identity or address already logged
	pair   *tls.Certificate
	serial string
	pool   *x509.CertPool
}

// loggedMax bounds how many distinct refused clients are logged; past it
// refusals are only counted.
const loggedMax = 1024

// NewCredentials checks cfg and returns the credentials.
func NewCredentials(cfg ServerConfig) (*Credentials, error) {
	if cfg.Certificate == nil {
		return nil, errors.New("xds credentials: no server certificate")
	}
	if len(cfg.Gateways) == 0 {
		return nil, errors.New("xds credentials: no gateway identity is allowed")
	}
	for _, id := range cfg.Gateways {
		if _, _, _, err := identity.ParseSPIFFEID(id); err != nil {
			return nil, fmt.Errorf("xds credentials: gateway identity %q: %w", id, err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	c := &Credentials{cfg: cfg, logged: map[string]bool{}, rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egressd_xds_rejected_clients_total",
		Help: "Clients of the xDS port refused during the TLS handshake, by reason (plaintext, no_certificate, untrusted_certificate, not_a_gateway, handshake_failed).",
	}, []string{"reason"})}
	for _, r := range reasons {
		c.rejected.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.rejected); err != nil {
			return nil, fmt.Errorf("xds credentials: %w", err)
		}
	}
	return c, nil
}

// current returns egressd's certificate and the client CA pool, parsed
// again only when the keeper renewed them.
func (c *Credentials) current() (*tls.Certificate, *x509.CertPool, error) {
	issued := c.cfg.Certificate.Current()
	serial := issued.Leaf.SerialNumber.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serial == serial {
		return c.pair, c.pool, nil
	}
	pair, err := tls.X509KeyPair(issued.ChainPEM, issued.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("egressd's xDS certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(issued.BundlePEM) {
		return nil, nil, errors.New("the mesh CA's trust bundle holds no certificate")
	}
	c.pair, c.pool, c.serial = &pair, pool, serial
	return c.pair, c.pool, nil
}

// ServerHandshake implements credentials.TransportCredentials.
func (c *Credentials) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pair, pool, err := c.current()
	if err != nil {
		return nil, nil, err
	}
	conn := tls.Server(raw, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		c.refuse(classify(err), "", raw.RemoteAddr(), err)
		return nil, nil, err
	}
	state := conn.ConnectionState()
	id := spiffeID(state.PeerCertificates[0])
	if id == nil || !slices.Contains(c.cfg.Gateways, id.String()) {
		name := "no SPIFFE identity"
		if id != nil {
			name = id.String()
		}
		err := fmt.Errorf("xds: %s is not a gateway identity (allowed: %s)", name, strings.Join(c.cfg.Gateways, ", "))
		c.refuse(ReasonNotAGateway, name, raw.RemoteAddr(), err)
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, credentials.TLSInfo{
		State:          state,
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		SPIFFEID:       id,
	}, nil
}

// ClientHandshake implements credentials.TransportCredentials; these are
// server credentials only.
func (c *Credentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("xds credentials: server side only")
}

// Info implements credentials.TransportCredentials.
func (c *Credentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}

// Clone implements credentials.TransportCredentials: the clone shares the
// certificate keeper and the refusal bookkeeping.
func (c *Credentials) Clone() credentials.TransportCredentials { return c }

// OverrideServerName implements credentials.TransportCredentials.
func (c *Credentials) OverrideServerName(string) error { return nil }

// refuse counts one refused client and logs it the first time its reason
// and identity (or, without one, address) are seen.
func (c *Credentials) refuse(reason, id string, addr net.Addr, err error) {
	c.rejected.WithLabelValues(reason).Inc()
	who := id
	if who == "" && addr != nil {
		who = addr.String()
		if host, _, e := net.SplitHostPort(who); e == nil {
			who = host // one line per client address, not per connection
		}
	}
	key := reason + "\x00" + who
	c.mu.Lock()
	first := !c.logged[key] && len(c.logged) < loggedMax
	if first {
		c.logged[key] = true
	}
	c.mu.Unlock()
	if first {
		c.cfg.Log.Warn("xds client refused", zap.String("reason", reason), zap.String("client", who), zap.Error(err))
	}
}

// classify names why a TLS handshake failed.
func classify(err error) string {
	msg := err.Error()
	var rec tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &rec) || strings.Contains(msg, "first record does not look like a TLS handshake"):
		return ReasonPlaintext
	case strings.Contains(msg, "client didn't provide a certificate"):
		return ReasonNoCertificate
	case errors.As(err, &unknown) || errors.As(err, &invalid) || strings.Contains(msg, "failed to verify certificate") || strings.Contains(msg, "bad certificate"):
		return ReasonUntrusted
	}
	return ReasonHandshake
}

// spiffeID returns the certificate's SPIFFE ID: its one spiffe:// URI SAN.
func spiffeID(cert *x509.Certificate) *url.URL {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			if found != nil {
				return nil // more than one: not a SPIFFE SVID
			}
			found = u
		}
	}
	return found
}

// PeerIdentity returns the SPIFFE ID of the gateway behind a gRPC call on
// a server with Credentials, or "" (insecure mode, no peer).
func PeerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && info.SPIFFEID != nil {
		return info.SPIFFEID.String()
	}
	return ""
}
