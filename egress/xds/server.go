package xds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/egressd/egressd/serviceentry"
)

// gatewayGroup is the one configuration group: every gateway replica gets
// the same resources, whatever node id it reports.
const gatewayGroup = "egress-gateway"

type oneGroup struct{}

func (oneGroup) ID(*corev3.Node) string { return gatewayGroup }

// Server publishes translated allowlists to Envoy gateways over ADS. If it
// stops, connected gateways keep the last configuration they accepted.
type Server struct {
	log   *zap.Logger
	opts  Options
	cache cachev3.SnapshotCache

	mu       sync.Mutex
	ln       net.Listener
	version  string            // last published version
	acked    map[string]string // type URL -> last version a gateway ACKed
	nacked   string            // last NACK message
	rejected map[string]string // version -> NACK message
	sent     map[string]string // response nonce -> version, until answered
	ackWatch chan struct{}     // closed and replaced on every ACK
	streams  int               // open ADS streams
	services []func(grpc.ServiceRegistrar)
	secrets  func() []*tlsv3.Secret
	last     *Resources // the last translation published, for Refresh

	// pubMu serialises publish: Update (config changes) and Refresh
	// (rotated secrets) come from different goroutines.
	pubMu sync.Mutex
}

// NewServer returns a Server that will translate allowlists with opts.
func NewServer(log *zap.Logger, opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	return &Server{
		log:      log,
		opts:     o,
		cache:    cachev3.NewSnapshotCache(true, oneGroup{}, log.Sugar()),
		acked:    map[string]string{},
		rejected: map[string]string{},
		sent:     map[string]string{},
		ackWatch: make(chan struct{}),
	}, nil
}

// Listen binds the gRPC address ("127.0.0.1:0" picks a free port) so the
// address is known before Start, e.g. for the Envoy bootstrap.
func (s *Server) Listen(address string) (net.Addr, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("xds: listen on %s: %w", address, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln.Addr(), nil
}

// AddService registers another gRPC service (the access log service) on the
// same listener, so the gateway needs only the one control-plane cluster.
// Call before Start.
func (s *Server) AddService(register func(grpc.ServiceRegistrar)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services = append(s.services, register)
}

// SetSecrets gives the server the SDS secrets (TLS origination material)
// to publish with each configuration; it serves those the clusters name.
// Call before Update.
func (s *Server) SetSecrets(secrets func() []*tlsv3.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = secrets
}

// Refresh publishes the last configuration again with the current secrets:
// a rotated certificate reaches Envoy by SDS, without a restart and
// without touching listeners or clusters.
func (s *Server) Refresh(ctx context.Context) (string, error) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last == nil {
		return "", nil
	}
	res := *last
	return s.publish(ctx, &res)
}

// Update translates a, validates the result and publishes it. On any error
// nothing is published and gateways keep the previous configuration.
func (s *Server) Update(ctx context.Context, a *serviceentry.Allowlist) (string, error) {
	res, err := Translate(a, s.opts)
	if err != nil {
		return "", err
	}
	version, err := s.publish(ctx, res)
	if err != nil {
		return "", err
	}
	s.log.Info("published gateway configuration",
		zap.String("version", version), zap.String("allowlist", a.Version()),
		zap.Int("listeners", len(res.Listeners)), zap.Int("routes", len(res.Routes)), zap.Int("clusters", len(res.Clusters)))
	return version, nil
}

// publish validates res and sets it as the gateways' snapshot, unless it
// equals the current one.
func (s *Server) publish(ctx context.Context, res *Resources) (string, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	secrets := s.secrets
	s.mu.Unlock()
	res.Secrets = nil
	if names := res.SecretNames(); len(names) > 0 {
		res.Secrets = pickSecrets(secrets, names)
		if missing := len(names) - len(res.Secrets); missing > 0 {
			// Those clusters cannot open TLS until the material loads:
			// they fail closed; the origination store says why.
			s.log.Warn("TLS origination material missing; the clusters that need it refuse traffic", zap.Int("missing", missing), zap.Strings("wanted", names))
		}
	}
	if err := res.Validate(); err != nil {
		return "", err
	}
	version := res.Version()
	s.mu.Lock()
	same := version == s.version
	s.mu.Unlock()
	if same {
		return version, nil
	}
	snap, err := res.Snapshot(version)
	if err != nil {
		return "", err
	}
	if err := s.cache.SetSnapshot(ctx, gatewayGroup, snap); err != nil {
		return "", fmt.Errorf("xds: publish %s: %w", version, err)
	}
	s.mu.Lock()
	s.version = version
	last := *res
	last.Secrets = nil
	s.last = &last
	s.mu.Unlock()
	return version, nil
}

// pickSecrets returns the secrets among source's whose names are wanted.
func pickSecrets(source func() []*tlsv3.Secret, wanted []string) []*tlsv3.Secret {
	if source == nil {
		return nil
	}
	want := make(map[string]bool, len(wanted))
	for _, n := range wanted {
		want[n] = true
	}
	var out []*tlsv3.Secret
	for _, sec := range source() {
		if want[sec.GetName()] {
			out = append(out, sec)
		}
	}
	return out
}

// Version is the last published configuration version.
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Connected reports whether a gateway holds an ADS stream now.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams > 0
}

// Acked returns the last version a gateway acknowledged for each resource
// type URL.
func (s *Server) Acked() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.acked))
	for k, v := range s.acked {
		out[k] = v
	}
	return out
}

// Rejected returns the error of the last configuration a gateway
// rejected (NACKed), or "" if none was.
func (s *Server) Rejected() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nacked
}

// WaitAcked blocks until a gateway has ACKed version for listeners,
// routes and clusters, or ctx ends.
func (s *Server) WaitAcked(ctx context.Context, version string) error {
	for {
		s.mu.Lock()
		done := true
		for _, t := range []string{"type.googleapis.com/envoy.config.listener.v3.Listener", "type.googleapis.com/envoy.config.cluster.v3.Cluster"} {
			if s.acked[t] != version {
				done = false
			}
		}
		watch := s.ackWatch
		nacked := s.rejected[version]
		s.mu.Unlock()
		if done {
			return nil
		}
		if nacked != "" {
			return fmt.Errorf("xds: gateway rejected configuration while waiting for %s: %s", version, nacked)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("xds: waiting for ACK of %s: %w", version, ctx.Err())
		case <-watch:
		}
	}
}

// Start serves ADS until ctx ends. Listen must have been called.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	ln, services := s.ln, s.services
	s.mu.Unlock()
	if ln == nil {
		return errors.New("xds: Start before Listen")
	}
	gs := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	srv := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	for _, register := range services {
		register(gs)
	}
	s.log.Info("serving xDS", zap.String("address", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(ln) }()
	select {
	case <-ctx.Done():
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			gs.Stop()
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("xds: serve: %w", err)
	}
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(_ context.Context, id int64, _ string) error {
			s.mu.Lock()
			s.streams++
			s.mu.Unlock()
			s.log.Info("gateway connected", zap.Int64("stream", id))
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) {
			s.mu.Lock()
			s.streams--
			s.mu.Unlock()
			s.log.Info("gateway disconnected", zap.Int64("stream", id), zap.String("node", node.GetId()))
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			// Remember which version each response carried, so a NACK
			// (which names the response by nonce) blames the right one.
			s.mu.Lock()
			if len(s.sent) > 4096 {
				// Responses on streams that closed unanswered; forget them.
				clear(s.sent)
			}
			s.sent[resp.GetNonce()] = resp.GetVersionInfo()
			s.mu.Unlock()
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if req.GetErrorDetail() != nil {
				s.mu.Lock()
				s.nacked = req.GetErrorDetail().GetMessage()
				if v, ok := s.sent[req.GetResponseNonce()]; ok {
					s.rejected[v] = s.nacked
					delete(s.sent, req.GetResponseNonce())
				}
				close(s.ackWatch) // wake waiters: a NACK is an answer too
				s.ackWatch = make(chan struct{})
				s.mu.Unlock()
				s.log.Error("gateway rejected configuration",
					zap.String("type", req.GetTypeUrl()), zap.String("node", req.GetNode().GetId()),
					zap.String("error", req.GetErrorDetail().GetMessage()))
				return nil
			}
			if req.GetResponseNonce() == "" {
				return nil
			}
			s.mu.Lock()
			delete(s.sent, req.GetResponseNonce())
			if s.acked[req.GetTypeUrl()] != req.GetVersionInfo() {
				s.acked[req.GetTypeUrl()] = req.GetVersionInfo()
				close(s.ackWatch)
				s.ackWatch = make(chan struct{})
			}
			s.mu.Unlock()
			return nil
		},
	}
}
