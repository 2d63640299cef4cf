package xds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/egress/xdsauth"
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

	// ledger is what each published version needs ACKed and what the
	// gateways ACKed and rejected.
	ledger *ackLedger
	// od serves the clusters Envoy discovers on demand.
	od *onDemand

	mu       sync.Mutex
	ln       net.Listener
	streams  int // open ADS streams
	services []func(grpc.ServiceRegistrar)
	creds    credentials.TransportCredentials // nil: plaintext
	secrets  func() []*tlsv3.Secret
	warnings []string                       // the last published translation's Warnings
	last     *Resources                     // the last translation published, for Refresh
	memo     *memo                          // its resources by their model, for the next translation
	plans    gateway.Cache                  // the last translation's ports, for the next
	pods     func() map[string][]netip.Addr // pod addresses by namespace (SetPods)
	podsGen  uint64                         // counts PodsChanged calls

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
		log:    log,
		opts:   o,
		cache:  cachev3.NewSnapshotCache(true, oneGroup{}, cacheLog{log.Sugar()}),
		ledger: newAckLedger(log),
		od:     newOnDemand(log, func(name string) *clusterv3.Cluster { return absentCluster(o, name) }),
	}, nil
}

// cacheLog is go-control-plane's cache logger: its Info lines (one per
// watch opened, several per push) are debug detail for egressd.
type cacheLog struct{ *zap.SugaredLogger }

func (l cacheLog) Infof(format string, args ...any) { l.Debugf(format, args...) }

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

// SetCredentials makes the server speak only TLS with creds (see
// xdsauth.Credentials: only authenticated gateways get in). Without it the
// server is plaintext. Call before Start.
func (s *Server) SetCredentials(creds credentials.TransportCredentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds = creds
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

// SetPods sets where the pod addresses by namespace come from (the pod
// index, with Options.SourceScope): every translation reads them. Call
// before Update.
func (s *Server) SetPods(pods func() map[string][]netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods = pods
}

// PodsChanged publishes the source scope again for the last allowlist and
// the pods as they are now: only its ECDS resources change, no listener,
// route or cluster.
func (s *Server) PodsChanged(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.podsGen++
	last := s.last
	s.mu.Unlock()
	if last == nil || !s.opts.SourceScope {
		return "", nil
	}
	res := *last
	return s.publish(ctx, &res) // publish builds the scope for the new pods
}

// podAddresses reads the pods (none without SetPods).
func podAddresses(pods func() map[string][]netip.Addr) map[string][]netip.Addr {
	if pods == nil {
		return nil
	}
	return pods()
}

// Update translates a, validates the result and publishes it. On any error
// nothing is published and gateways keep the previous configuration.
func (s *Server) Update(ctx context.Context, a *serviceentry.Allowlist) (string, error) {
	s.mu.Lock()
	memo, pods, gen := s.memo, s.pods, s.podsGen
	s.mu.Unlock()
	res, err := translate(a, s.opts, memo, &s.plans, podAddresses(pods))
	if err != nil {
		return "", err
	}
	res.podsGen = gen
	version, err := s.publish(ctx, res)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	newWarnings := !slices.Equal(res.Warnings, s.warnings)
	s.warnings = res.Warnings
	s.mu.Unlock()
	if newWarnings {
		for _, w := range res.Warnings {
			s.log.Warn("gateway configuration: left out", zap.String("detail", w))
		}
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
	secrets, pods, gen := s.secrets, s.pods, s.podsGen
	s.mu.Unlock()
	if s.opts.SourceScope && res.podsGen != gen && res.source != nil {
		// The pods changed since res was translated (PodsChanged, maybe
		// while Update translated): its source scope is rebuilt for them.
		res.Extensions = sourceScopes(res.scopes, res.source, s.opts, podAddresses(pods))
		res.podsGen = gen
	}
	res.Secrets = nil
	if names := res.SecretNames(); len(names) > 0 {
		res.Secrets = pickSecrets(secrets, names)
		if missing := len(names) - len(res.Secrets); missing > 0 {
			// Those clusters cannot open TLS until the material loads:
			// they fail closed; the origination store says why.
			s.log.Warn("TLS origination material missing; the clusters that need it refuse traffic", zap.Int("missing", missing), zap.Strings("wanted", names))
		}
	}
	version, digests := res.digests()
	current, published := s.ledger.current()
	same := version == current
	if err := res.validateChanged(published, digests); err != nil {
		return "", err
	}
	if same {
		return version, nil
	}
	snap, err := res.snapshot(version, digests)
	if err != nil {
		return "", err
	}
	// Recorded before the cache sends anything, so an ACK cannot arrive
	// for a version the server does not know yet.
	s.ledger.publishing(version, res.allowlist, digests)
	if err := s.cache.SetSnapshot(ctx, gatewayGroup, snap); err != nil {
		return "", fmt.Errorf("xds: publish %s: %w", version, err)
	}
	s.ledger.published(version)
	seq, _ := s.ledger.seq(version) // just recorded
	s.od.set(version, seq, res.onDemandClusters(), digests[onDemandDigests])
	s.mu.Lock()
	s.memo = res.built.published(digests)
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
func (s *Server) Version() string { return s.ledger.Version() }

// Connected reports whether a gateway holds an ADS stream now.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams > 0
}

// Rejected returns the error of the last configuration a gateway
// rejected (NACKed), or "" if none was.
func (s *Server) Rejected() string {
	if r := s.ledger.Rejected(); r != "" {
		return r
	}
	return s.od.Rejected()
}

// PushedBytes is the encoded size of every xDS response sent so far, on
// all streams: with delta xDS a change costs bytes in proportion to the
// resources it changed.
func (s *Server) PushedBytes() int64 { return s.ledger.PushedBytes() + s.od.PushedBytes() }

// AllowlistVersion is the version of the allowlist the last published
// configuration was translated from ("" before the first).
func (s *Server) AllowlistVersion() string { return s.ledger.AllowlistVersion() }

// AckedVersion is the newest published version a gateway holds
// entirely (see WaitAcked), or "" if none.
func (s *Server) AckedVersion() string { return s.ledger.AckedVersion() }

// AckedAllowlistVersion is the version of the allowlist behind
// AckedVersion: what the gateway enforces ("" when it holds nothing
// egressd published).
func (s *Server) AckedAllowlistVersion() string { return s.ledger.AckedAllowlistVersion() }

// WaitAcked blocks until a gateway holds version, or ctx ends: it has
// ACKed, for every resource type, the last version that changed that type
// (or a later one). Over delta xDS, where only changed resources are sent,
// a version that changed one cluster is held once that cluster is ACKed.
// Clusters discovered on demand count once every gateway that holds them
// has ACKed them as of version.
func (s *Server) WaitAcked(ctx context.Context, version string) error {
	if err := s.ledger.WaitAcked(ctx, version); err != nil {
		return err
	}
	seq, ok := s.ledger.seq(version)
	if !ok {
		return nil // older than the ledger remembers: held since
	}
	return s.od.waitHeld(ctx, version, seq)
}

// Gateway is the gateway model of the last configuration published; nil
// before the first. It is shared: callers must not change it.
func (s *Server) Gateway() *gateway.Gateway {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	return s.last.Gateway
}

// Start serves ADS until ctx ends. Listen must have been called.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	ln, services, creds := s.ln, s.services, s.creds
	s.mu.Unlock()
	if ln == nil {
		return errors.New("xds: Start before Listen")
	}
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	srv := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	s.od.register(gs)
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
	open := func(ctx context.Context, id int64, _ string) error {
		s.mu.Lock()
		s.streams++
		s.mu.Unlock()
		s.log.Info("gateway connected", zap.Int64("stream", id), zap.String("gateway", xdsauth.PeerIdentity(ctx)))
		return nil
	}
	closed := func(id int64, node *corev3.Node) {
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
		s.log.Info("gateway disconnected", zap.Int64("stream", id), zap.String("node", node.GetId()))
	}
	return serverv3.CallbackFuncs{
		StreamOpenFunc:        open,
		StreamClosedFunc:      closed,
		DeltaStreamOpenFunc:   open,
		DeltaStreamClosedFunc: closed,
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.ledger.sentResponse(resp.GetNonce(), resp.GetTypeUrl(), resp.GetVersionInfo(), proto.Size(resp))
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			if req.GetResponseNonce() == "" && req.GetVersionInfo() != "" {
				s.ledger.resumedAt(req.GetTypeUrl(), req.GetVersionInfo())
			}
			s.ledger.answered(req.GetResponseNonce(), req.GetTypeUrl(), req.GetNode(), req.GetErrorDetail())
			return nil
		},
		// Delta (incremental) xDS: the same bookkeeping; a delta response
		// carries its snapshot version in system_version_info.
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.ledger.sentResponse(resp.GetNonce(), resp.GetTypeUrl(), resp.GetSystemVersionInfo(), proto.Size(resp))
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if req.GetResponseNonce() == "" && len(req.GetInitialResourceVersions()) > 0 {
				s.ledger.resumedWith(req.GetTypeUrl(), req.GetInitialResourceVersions())
			}
			s.ledger.answered(req.GetResponseNonce(), req.GetTypeUrl(), req.GetNode(), req.GetErrorDetail())
			return nil
		},
	}
}
