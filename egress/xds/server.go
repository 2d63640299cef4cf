package xds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/status"
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

	mu       sync.Mutex
	ln       net.Listener
	version  string            // last published version
	acked    map[string]string // type URL -> last version a gateway ACKed
	nacked   string            // last NACK message
	rejected map[string]string // version -> NACK message
	sent     map[string]sent   // response nonce -> what it carried, until answered
	ackWatch chan struct{}     // closed and replaced on every ACK
	streams  int               // open ADS streams
	pushed   int64             // bytes of responses sent, all streams
	services []func(grpc.ServiceRegistrar)
	creds    credentials.TransportCredentials // nil: plaintext
	secrets  func() []*tlsv3.Secret
	warnings []string   // the last published translation's Warnings
	last     *Resources // the last translation published, for Refresh
	memo     *memo      // its resources by their model, for the next translation

	// What each published version needs ACKed (see WaitAcked).
	digests    map[string]map[string]string // type URL -> name -> digest, as published
	lastChange map[string]string            // type URL -> last version that changed it
	history    map[string]*published        // recent versions
	order      []string                     // history's versions, oldest first

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
		log:        log,
		opts:       o,
		cache:      cachev3.NewSnapshotCache(true, oneGroup{}, cacheLog{log.Sugar()}),
		acked:      map[string]string{},
		rejected:   map[string]string{},
		sent:       map[string]sent{},
		ackWatch:   make(chan struct{}),
		lastChange: map[string]string{},
		history:    map[string]*published{},
	}, nil
}

// cacheLog is go-control-plane's cache logger: its Info lines (one per
// watch opened, several per push) are debug detail for egressd.
type cacheLog struct{ *zap.SugaredLogger }

func (l cacheLog) Infof(format string, args ...any) { l.Debugf(format, args...) }

// sent is what one response carried: its resource type and version.
type sent struct{ typeURL, version string }

// published is one version the server published: its place in the order
// of publishing, and, for each resource type, the version a gateway must
// have ACKed (or passed) to hold this version's resources of that type.
// With delta xDS a type that did not change is not sent again, so its
// requirement is the last version that changed it.
type published struct {
	seq  int
	need map[string]string
	// allowlist is the version of the allowlist it was translated from.
	allowlist string
}

// historyKept bounds how many published versions WaitAcked can wait for.
const historyKept = 256

// Resource types whose changes a version waits for. Routes and secrets
// are only sent to a gateway that asks for them by name (the listeners and
// clusters it holds do), so a route or secret that was only removed is
// never answered for; a removed listener or cluster is.
var (
	wildcardTypes = []string{resourcev3.ListenerType, resourcev3.ClusterType}
	namedTypes    = []string{resourcev3.RouteType, resourcev3.SecretType}
)

// record notes version as published with the given per-resource digests.
// Call with s.mu held.
func (s *Server) record(version, allowlist string, digests map[string]map[string]string) {
	changed := func(typ string, removals bool) bool {
		before, after := s.digests[typ], digests[typ]
		for n, d := range after {
			if before[n] != d {
				return true
			}
		}
		if removals {
			for n := range before {
				if _, ok := after[n]; !ok {
					return true
				}
			}
		}
		return false
	}
	for _, t := range wildcardTypes {
		if changed(t, true) {
			s.lastChange[t] = version
		}
	}
	for _, t := range namedTypes {
		if changed(t, false) {
			s.lastChange[t] = version
		}
	}
	s.digests = digests
	p := &published{need: map[string]string{}, allowlist: allowlist}
	if n := len(s.order); n > 0 {
		p.seq = s.history[s.order[n-1]].seq + 1
	}
	for t, v := range s.lastChange {
		p.need[t] = v
	}
	if _, ok := s.history[version]; ok {
		// Republished (A -> B -> A): it is new again.
		s.order = slices.DeleteFunc(s.order, func(v string) bool { return v == version })
	}
	s.history[version] = p
	s.order = append(s.order, version)
	if len(s.order) > historyKept {
		delete(s.history, s.order[0])
		s.order = s.order[1:]
	}
}

// holds reports whether the gateway holds version: for every resource
// type it has ACKed the version that type needs, or a later one. Call
// with s.mu held.
func (s *Server) holds(version string) bool {
	p, ok := s.history[version]
	if !ok {
		return false
	}
	for t, need := range p.need {
		got := s.acked[t]
		if got == need {
			continue
		}
		g, ok1 := s.history[got]
		n, ok2 := s.history[need]
		if !ok1 || !ok2 || g.seq < n.seq {
			return false
		}
	}
	return true
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

// Update translates a, validates the result and publishes it. On any error
// nothing is published and gateways keep the previous configuration.
func (s *Server) Update(ctx context.Context, a *serviceentry.Allowlist) (string, error) {
	s.mu.Lock()
	memo := s.memo
	s.mu.Unlock()
	res, err := translate(a, s.opts, memo)
	if err != nil {
		return "", err
	}
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
	version, digests := res.digests()
	s.mu.Lock()
	same, published := version == s.version, s.digests
	s.mu.Unlock()
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
	s.mu.Lock()
	s.record(version, res.allowlist, digests)
	s.mu.Unlock()
	if err := s.cache.SetSnapshot(ctx, gatewayGroup, snap); err != nil {
		return "", fmt.Errorf("xds: publish %s: %w", version, err)
	}
	s.mu.Lock()
	s.version = version
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

// Rejected returns the error of the last configuration a gateway
// rejected (NACKed), or "" if none was.
func (s *Server) Rejected() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nacked
}

// PushedBytes is the encoded size of every xDS response sent so far, on
// all streams: with delta xDS a change costs bytes in proportion to the
// resources it changed.
func (s *Server) PushedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushed
}

// missing says which resource types a gateway has not ACKed for version.
func (s *Server) missing(version string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.history[version]
	if !ok {
		return "unknown version"
	}
	var out []string
	for t, need := range p.need {
		if got := s.acked[t]; got != need {
			out = append(out, fmt.Sprintf("%s needs %s, has %q", strings.TrimPrefix(t, "type.googleapis.com/"), need, got))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// AllowlistVersion is the version of the allowlist the last published
// configuration was translated from ("" before the first).
func (s *Server) AllowlistVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.history[s.version]; ok {
		return p.allowlist
	}
	return ""
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

// AckedAllowlistVersion is the version of the allowlist behind
// AckedVersion: what the gateway enforces ("" when it holds nothing
// egressd published).
func (s *Server) AckedAllowlistVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.newestHeld(); v != "" {
		return s.history[v].allowlist
	}
	return ""
}

// AckedVersion is the newest published version a gateway holds
// entirely (see WaitAcked), or "" if none.
func (s *Server) AckedVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newestHeld()
}

// newestHeld is AckedVersion; call with s.mu held.
func (s *Server) newestHeld() string {
	for i := len(s.order) - 1; i >= 0; i-- {
		if s.holds(s.order[i]) {
			return s.order[i]
		}
	}
	return ""
}

// WaitAcked blocks until a gateway holds version, or ctx ends: it has
// ACKed, for every resource type, the last version that changed that type
// (or a later one). Over delta xDS, where only changed resources are sent,
// a version that changed one cluster is held once that cluster is ACKed.
func (s *Server) WaitAcked(ctx context.Context, version string) error {
	for {
		s.mu.Lock()
		_, known := s.history[version]
		done := s.holds(version)
		watch := s.ackWatch
		nacked := s.rejected[version]
		s.mu.Unlock()
		if done {
			return nil
		}
		if !known {
			return fmt.Errorf("xds: version %s was not published (or is too old to wait for)", version)
		}
		if nacked != "" {
			return fmt.Errorf("xds: gateway rejected configuration while waiting for %s: %s", version, nacked)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("xds: waiting for ACK of %s (%s): %w", version, s.missing(version), ctx.Err())
		case <-watch:
		}
	}
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

// sentResponse remembers which type and version a response carried, so
// the ACK or NACK that names it by nonce is credited to the right one.
func (s *Server) sentResponse(nonce, typeURL, version string, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushed += int64(size)
	if len(s.sent) > 4096 {
		// Responses on streams that closed unanswered; forget them.
		clear(s.sent)
	}
	s.sent[nonce] = sent{typeURL: typeURL, version: version}
}

// resumedWith handles the first delta request of a gateway that already
// holds resources (Envoy reconnecting, or adopted by a restarted egressd):
// initial are their versions, our digests. If they are exactly the
// current resources of the type, the cache sends nothing (they did not
// change), so there is no ACK to wait for: the gateway holds the current
// version of the type already.
func (s *Server) resumedWith(typeURL string, initial map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := s.digests[typeURL]
	if s.version == "" || len(current) == 0 {
		return
	}
	for name, v := range initial {
		if current[name] != v {
			return
		}
	}
	if slices.Contains(wildcardTypes, typeURL) {
		// Wildcard types hold every resource, not a subscribed few.
		if len(initial) != len(current) {
			return
		}
	}
	s.ack(typeURL, s.version)
}

// resumedAt is resumedWith for a state-of-the-world stream: the gateway's
// first request names the version it holds, and is not answered again if
// that is the current one.
func (s *Server) resumedAt(typeURL, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == s.version {
		s.ack(typeURL, version)
	}
}

// ack records that a gateway holds version of typeURL and wakes waiters.
// Call with s.mu held.
func (s *Server) ack(typeURL, version string) {
	if s.acked[typeURL] != version {
		s.acked[typeURL] = version
		close(s.ackWatch)
		s.ackWatch = make(chan struct{})
	}
}

// answered handles a request that answers the response with nonce: an
// ACK, or a NACK when detail is set. A request without a nonce (the
// first on a stream, or a new subscription) answers nothing.
func (s *Server) answered(nonce, typeURL string, node *corev3.Node, detail *status.Status) {
	if nonce == "" {
		return
	}
	s.mu.Lock()
	r, ok := s.sent[nonce]
	delete(s.sent, nonce)
	if detail != nil {
		s.nacked = detail.GetMessage()
		if ok {
			s.rejected[r.version] = s.nacked
		}
		close(s.ackWatch) // wake waiters: a NACK is an answer too
		s.ackWatch = make(chan struct{})
		s.mu.Unlock()
		s.log.Error("gateway rejected configuration",
			zap.String("type", typeURL), zap.String("node", node.GetId()), zap.String("version", r.version),
			zap.String("error", detail.GetMessage()))
		return
	}
	if ok {
		s.ack(r.typeURL, r.version)
	}
	s.mu.Unlock()
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
			s.sentResponse(resp.GetNonce(), resp.GetTypeUrl(), resp.GetVersionInfo(), proto.Size(resp))
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			if req.GetResponseNonce() == "" && req.GetVersionInfo() != "" {
				s.resumedAt(req.GetTypeUrl(), req.GetVersionInfo())
			}
			s.answered(req.GetResponseNonce(), req.GetTypeUrl(), req.GetNode(), req.GetErrorDetail())
			return nil
		},
		// Delta (incremental) xDS: the same bookkeeping; a delta response
		// carries its snapshot version in system_version_info.
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.sentResponse(resp.GetNonce(), resp.GetTypeUrl(), resp.GetSystemVersionInfo(), proto.Size(resp))
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if req.GetResponseNonce() == "" && len(req.GetInitialResourceVersions()) > 0 {
				s.resumedWith(req.GetTypeUrl(), req.GetInitialResourceVersions())
			}
			s.answered(req.GetResponseNonce(), req.GetTypeUrl(), req.GetNode(), req.GetErrorDetail())
			return nil
		},
	}
}
