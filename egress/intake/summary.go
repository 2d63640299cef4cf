package intake

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/egress/xdsauth"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// SummaryConfig configures a Summaries service.
type SummaryConfig struct {
	// Sink receives each summary decision, on the receiving stream's
	// goroutine; it must not block.
	Sink func(*decision.Decision)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives stream open/close lines. Default: none.
	Log *zap.Logger
	// Registerer receives egressd_allowed_summaries_total. nil: none.
	Registerer prometheus.Registerer
}

// Summaries is egressd's metrics service (envoy.service.metrics.v3): the
// gateway's stats sink streams its stats every flush, and the counters of
// the allowed requests it summarized (xds.Options.SummarizeAllowed)
// become one decision per host, port and ServiceEntry with the count and
// bytes of the flush. Every other stat is ignored.
type Summaries struct {
	metricsv3.UnimplementedMetricsServiceServer
	cfg       SummaryConfig
	summaries prometheus.Counter
}

// NewSummaries returns a Summaries service for cfg.
func NewSummaries(cfg SummaryConfig) (*Summaries, error) {
	if cfg.Sink == nil {
		return nil, errors.New("intake: summaries: no sink")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Summaries{cfg: cfg, summaries: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "egressd_allowed_summaries_total",
		Help: "Summary decisions made from the gateways' counts of allowed requests (one per host, port and ServiceEntry per stats flush).",
	})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.summaries); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Summaries) Register(r grpc.ServiceRegistrar) {
	metricsv3.RegisterMetricsServiceServer(r, s)
}

// StreamMetrics receives one gateway's stats flushes until it closes the
// stream.
func (s *Summaries) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	gateway := xdsauth.PeerIdentity(stream.Context())
	var node string
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			s.cfg.Log.Debug("metrics stream ended", zap.String("node", node), zap.Error(err))
			return err
		}
		if id := msg.GetIdentifier(); id != nil && node == "" {
			node = id.GetNode().GetId()
		}
		for _, d := range SummaryDecisions(msg.GetEnvoyMetrics(), s.cfg.Now()) {
			d.Gateway, d.GatewayNode = gateway, node
			s.summaries.Inc()
			s.cfg.Sink(d)
		}
	}
}

// summaryKey is what one summary decision is about.
type summaryKey struct {
	host, entry string
	port        uint32
}

// SummaryDecisions turns one stats flush into summary decisions: for each
// host, port and ServiceEntry whose request counter grew, one allowed
// decision with the count (Decision.Count) and the bytes, at time at. The
// families are Envoy's, tags as labels, counters as deltas.
func SummaryDecisions(families []*dto.MetricFamily, at time.Time) []*decision.Decision {
	byKey := map[summaryKey]*decision.Decision{}
	var order []summaryKey
	for _, f := range families {
		counter, ok := strings.CutPrefix(f.GetName(), xds.AllowedStatPrefix+".")
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			n := uint64(m.GetCounter().GetValue())
			if n == 0 {
				continue
			}
			k, ok := keyOf(m.GetLabel())
			if !ok {
				continue
			}
			d := byKey[k]
			if d == nil {
				d = &decision.Decision{Time: at, Layer: vocab.LayerHTTP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed,
					Host: k.host, Port: k.port, ServiceEntry: k.entry}
				byKey[k] = d
				order = append(order, k)
			}
			switch counter {
			case xds.AllowedRequests:
				d.Count += n
			case xds.AllowedBytesReceived:
				d.BytesReceived += n
			case xds.AllowedBytesSent:
				d.BytesSent += n
			}
		}
	}
	out := make([]*decision.Decision, 0, len(order))
	for _, k := range order {
		if d := byKey[k]; d.Count > 0 {
			d.Detail = strconv.FormatUint(d.Count, 10) + " allowed requests, summarized by the gateway"
			out = append(out, d)
		}
	}
	return out
}

// keyOf reads a counter's labels. Envoy writes "-" for a metadata value
// that is not there: the entry is on the route or on the cluster.
func keyOf(labels []*dto.LabelPair) (summaryKey, bool) {
	var k summaryKey
	var routeEntry, clusterEntry string
	for _, l := range labels {
		switch l.GetName() {
		case xds.AllowedTagHost:
			k.host = hostOnly(l.GetValue())
		case xds.AllowedTagPort:
			p, err := strconv.ParseUint(l.GetValue(), 10, 16)
			if err != nil || p == 0 {
				return k, false
			}
			k.port = uint32(p)
		case xds.AllowedTagRouteEntry:
			routeEntry = l.GetValue()
		case xds.AllowedTagClusterEntry:
			clusterEntry = l.GetValue()
		}
	}
	for _, e := range []string{routeEntry, clusterEntry} {
		if e != "" && e != "-" {
			k.entry = e
			break
		}
	}
	return k, k.host != "" && k.port != 0
}
