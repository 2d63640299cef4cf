package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Server is the DNS proxy: a dns.Handler plus one dns.Server each for UDP
// and TCP on the same address. The query path reads the current allowlist
// through an atomic pointer and takes no locks (the response cache has its
// own).
type Server struct {
	cfg         *config
	log         *zap.Logger
	decisionLog *zap.Logger // log with layer=dns
	metrics     *metrics
	fwd         *forwarder
	snap        atomic.Pointer[snapshot]
	ctx         atomic.Pointer[context.Context] // cancelled when Start returns

	mu      sync.Mutex
	started bool
	addr    string
	ready   chan struct{}
}

// New validates c, applies its defaults and returns a Server. Until
// SetAllowlist is called it answers SERVFAIL for everything outside the
// pass-through zones.
func New(c Config) (*Server, error) {
	cfg, err := c.validate()
	if err != nil {
		return nil, fmt.Errorf("dnsproxy: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Log, decisionLog: cfg.Log.With(zap.String(keyLayer, string(vocab.LayerDNS))), ready: make(chan struct{})}
	var responses *cache
	if cfg.CacheSize > 0 {
		responses = newCache(cfg.CacheSize)
	}
	m, err := newMetrics(cfg.Registerer, cfg.MetricsSubsystem, responses.len)
	if err != nil {
		return nil, fmt.Errorf("dnsproxy: %w", err)
	}
	s.metrics, s.fwd = m, newForwarder(cfg, responses, m)
	return s, nil
}

// SetAllowlist makes a the allowlist every following query is checked
// against. It compiles the answer of every host (and allocates VIPs) first,
// then swaps one pointer.
func (s *Server) SetAllowlist(a *serviceentry.Allowlist) {
	if a == nil {
		s.snap.Store(nil)
		return
	}
	snap := buildSnapshot(s.cfg, a)
	s.snap.Store(snap)
	s.metrics.vips.Set(float64(snap.vips))
	s.log.Info("dns allowlist updated", zap.String("version", a.Version()),
		zap.Int("hosts", len(a.Hosts())), zap.Int("vips", snap.vips))
}

// AllowlistVersion is the version of the allowlist queries are checked
// against ("" before SetAllowlist).
func (s *Server) AllowlistVersion() string {
	if snap := s.snap.Load(); snap != nil {
		return snap.allow.Version()
	}
	return ""
}

// Start serves DNS over UDP and TCP on the configured address until ctx
// ends, then shuts both servers down and returns nil. It returns an error
// when the address cannot be bound or a server fails. Ready is closed once
// both servers accept queries.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("dnsproxy: Start called twice")
	}
	s.started = true
	s.mu.Unlock()

	pc, ln, err := listen(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("dnsproxy: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx.Store(&ctx)

	var udpUp, tcpUp sync.WaitGroup
	udpUp.Add(1)
	tcpUp.Add(1)
	udp := &dns.Server{
		PacketConn:        udpConn(pc),
		Handler:           s,
		UDPSize:           dns.DefaultMsgSize,
		NotifyStartedFunc: udpUp.Done,
	}
	tcp := &dns.Server{
		Listener:          ln,
		Handler:           s,
		NotifyStartedFunc: tcpUp.Done,
	}
	errc := make(chan error, 2)
	go func() { errc <- wrapServe("udp", udp.ActivateAndServe()) }()
	go func() { errc <- wrapServe("tcp", tcp.ActivateAndServe()) }()

	started := make(chan struct{})
	go func() { udpUp.Wait(); tcpUp.Wait(); close(started) }()
	select {
	case <-started:
	case err := <-errc:
		_ = pc.Close()
		_ = ln.Close()
		return err
	}
	s.mu.Lock()
	s.addr = pc.LocalAddr().String()
	s.mu.Unlock()
	close(s.ready)
	s.log.Info("serving DNS", zap.String("address", s.Addr()), zap.String("mode", string(s.cfg.Mode)),
		zap.String("outbound", string(s.cfg.Outbound)), zap.Strings("upstreams", s.cfg.upstreams))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	shutdown, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	_ = udp.ShutdownContext(shutdown)
	_ = tcp.ShutdownContext(shutdown)
	return serveErr
}

// plainPacketConn hides the *net.UDPConn from dns.Server, which then reads
// and writes with recvfrom and sendto instead of recvmsg and sendmsg with
// packet-info control messages. The control messages only matter on a
// wildcard address (0.0.0.0, ::), where they make replies leave from the
// address the query came to; on a specific address they cost CPU for
// nothing.
type plainPacketConn struct{ net.PacketConn }

func udpConn(pc net.PacketConn) net.PacketConn {
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		return plainPacketConn{pc}
	}
	return pc
}

func wrapServe(transport string, err error) error {
	if err == nil {
		return fmt.Errorf("dnsproxy: %s server stopped", transport)
	}
	return fmt.Errorf("dnsproxy: %s server: %w", transport, err)
}

// Ready is closed when Start serves both transports; Addr is valid then.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address being served ("127.0.0.1:40123" when Listen
// used port 0), or "" before Ready.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// listen binds UDP and TCP on the same address. With port 0 it binds UDP on
// a free port first, then TCP on that port, and tries again when the TCP
// port is taken.
func listen(address string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", address, err)
	}
	attempts := 1
	if port == "0" {
		attempts = 20
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		pc, err := net.ListenPacket("udp", address)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on udp %s: %w", address, err)
		}
		_, bound, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, bound))
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("listen on tcp %s: %w", address, lastErr)
}
