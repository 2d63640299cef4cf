// Package intake is egressd's gRPC Access Log Service (envoy.service.
// accesslog.v3): the gateway's listeners stream their HTTP and TCP access
// log entries to it, and each entry that carries egressd's tags becomes
// one decision.Decision handed to the sink.
package intake

import (
	"errors"
	"io"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xdsauth"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// Config configures a Service.
type Config struct {
	// Sink receives every decision, on the receiving stream's goroutine.
	// It must not block: Envoy's sends would back up behind it.
	Sink func(*decision.Decision)
	// Allowlist returns the current allowlist (may return nil).
	Allowlist func() *serviceentry.Allowlist
	// Scope is the gateway's place in the mesh: the policies a policy
	// denial lists are those that apply to it (nil: all).
	Scope *serviceentry.PolicyScope
	// Refusals is where the gateway resolver notes the addresses it
	// refused (see Refused); nil: decisions are not matched with them.
	Refusals *netguard.Ledger
	// Log receives stream open/close lines. Default: none.
	Log *zap.Logger
	// Registerer receives egressd_access_log_entries_total. nil: none.
	Registerer prometheus.Registerer
}

// Service implements accesslogv3.AccessLogServiceServer.
type Service struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	cfg     Config
	entries *prometheus.CounterVec
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Sink == nil {
		return nil, errors.New("intake: no sink")
	}
	if cfg.Allowlist == nil {
		cfg.Allowlist = func() *serviceentry.Allowlist { return nil }
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Service{cfg: cfg, entries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egressd_access_log_entries_total",
		Help: "Gateway access log entries received, by type (http, tcp) and result (decision, skipped).",
	}, []string{"type", "result"})}
	for _, t := range []string{"http", "tcp"} {
		for _, r := range []string{"decision", "skipped"} {
			s.entries.WithLabelValues(t, r)
		}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.entries); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	accesslogv3.RegisterAccessLogServiceServer(r, s)
}

// StreamAccessLogs receives one gateway logger's entries until it closes
// the stream.
func (s *Service) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	var node string
	// The gateway's authenticated identity (its xDS client certificate);
	// the node id is what it says of itself.
	gateway := xdsauth.PeerIdentity(stream.Context())
	httpDecision, httpSkipped := s.entries.WithLabelValues("http", "decision"), s.entries.WithLabelValues("http", "skipped")
	tcpDecision, tcpSkipped := s.entries.WithLabelValues("tcp", "decision"), s.entries.WithLabelValues("tcp", "skipped")
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			s.cfg.Log.Debug("access log stream ended", zap.String("node", node), zap.Error(err))
			return err
		}
		if id := msg.GetIdentifier(); id != nil && node == "" {
			node = id.GetNode().GetId()
			s.cfg.Log.Debug("access log stream opened", zap.String("node", node), zap.String("log", id.GetLogName()))
		}
		if http := msg.GetHttpLogs().GetLogEntry(); len(http) > 0 {
			a := s.cfg.Allowlist()
			for _, e := range http {
				if d, ok := fromHTTP(e, a, s.cfg.Scope); ok && d.Valid() {
					Refused(d, a, s.cfg.Refusals, time.Now())
					d.Gateway, d.GatewayNode = gateway, node
					httpDecision.Inc()
					s.cfg.Sink(d)
				} else {
					httpSkipped.Inc()
				}
			}
		}
		if tcp := msg.GetTcpLogs().GetLogEntry(); len(tcp) > 0 {
			a := s.cfg.Allowlist()
			for _, e := range tcp {
				if d, ok := fromTCP(e, a, s.cfg.Scope); ok && d.Valid() {
					Refused(d, a, s.cfg.Refusals, time.Now())
					d.Gateway, d.GatewayNode = gateway, node
					tcpDecision.Inc()
					s.cfg.Sink(d)
				} else {
					tcpSkipped.Inc()
				}
			}
		}
	}
}
