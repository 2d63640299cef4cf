package xds

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Access log field names. Every gateway log line is one JSON object with
// these keys, for allowed and denied traffic alike; the decision intake
// (and people reading the log) rely on them.
const (
	LogTime         = "time"
	LogLayer        = "layer"
	LogVerdict      = "verdict"
	LogReason       = "reason"
	LogServiceEntry = "serviceentry"
	LogHost         = "host"
	LogPort         = "port"
	LogSource       = "source"
	LogDestination  = "destination"
	LogUpstream     = "upstream"
	LogCluster      = "cluster"
	LogFlags        = "response_flags"
	LogDurationMs   = "duration_ms"
	LogBytesIn      = "bytes_received"
	LogBytesOut     = "bytes_sent"
	LogMethod       = "method"
	LogPath         = "path"
	LogProtocol     = "protocol"
	LogStatus       = "status"
	LogLocation     = "location"
	LogDetails      = "details"
	LogChain        = "filter_chain"
)

// Custom tags on the gRPC access log entries egressd receives
// (AccessLogCommon.custom_tags): what the gateway decided, so the intake
// does not have to guess it from the entry.
const (
	TagLayer        = "egressd.layer"
	TagVerdict      = "egressd.verdict"
	TagReason       = "egressd.reason"
	TagServiceEntry = "egressd.serviceentry"
	// TagClusterServiceEntry is the entry named by the upstream cluster's
	// metadata: HTTP requests routed by Host carry it instead of
	// TagServiceEntry, which comes from the route.
	TagClusterServiceEntry = "egressd.cluster_serviceentry"
	TagPort                = "egressd.port"
	// TagChain is the filter chain's name: "tcp|<port>|<ns>/<name>" for a
	// TCP entry's chain, "tls|<port>|<host>" for a passthrough host.
	TagChain = "egressd.chain"
	// TagMesh is "true" on the mesh listener, where callers authenticate
	// with mesh certificates: an entry without a peer certificate there is
	// an unauthenticated caller.
	TagMesh = "egressd.mesh"
)

// ALSLogName is the log_name of every gateway gRPC access log.
const ALSLogName = "egressd"

// alsFlushInterval bounds how long Envoy holds access log entries before
// sending them: decisions reach egressd within it.
const alsFlushInterval = 200 * time.Millisecond

// alsBufferBytes is how much Envoy buffers per logger before it flushes
// early. Envoy drops entries (and counts them in its logs_dropped stat)
// rather than block traffic when egressd cannot keep up.
const alsBufferBytes = 64 * 1024

// routeMetadataKey is the filter_metadata namespace on routes that carries
// verdict, reason and ServiceEntry into the HTTP access log.
const routeMetadataKey = "egressd"

// httpAccessLog logs every HTTP request on a gateway port; the verdict comes
// from the matched route's metadata. On a port that routes by Host
// (byHost), a request whose Host names no cluster matched the shared
// by_host route: the file log has a logger of its own for it (deny /
// not_in_registry), and the decision intake tells it by its NC flag, so the
// gRPC log needs no per-request filter.
func httpAccessLog(o Options, port uint32, mesh, byHost bool) []*accesslogv3.AccessLog {
	var out []*accesslogv3.AccessLog
	if o.AccessLogPath != "" {
		type variant struct {
			filter          string
			verdict, reason string // literal; empty: from the route's metadata
		}
		variants := []variant{{}}
		if byHost {
			variants = []variant{
				{filter: "response.code_details != 'cluster_not_found'"},
				{filter: "response.code_details == 'cluster_not_found'", verdict: string(vocab.VerdictDeny), reason: string(vocab.ReasonNotInRegistry)},
			}
		}
		meta := func(key string) string { return fmt.Sprintf("%%METADATA(ROUTE:%s:%s)%%", routeMetadataKey, key) }
		for _, v := range variants {
			verdict, reason := meta("verdict"), meta("reason")
			if v.verdict != "" {
				verdict, reason = v.verdict, v.reason
			}
			out = append(out, fileLog(o, celFilter(v.filter), port, map[string]string{
				LogLayer:   "http",
				LogVerdict: verdict,
				LogReason:  reason,
				// An entry's name is on its route (hosts without a
				// cluster of their own) or on its cluster; never both.
				LogServiceEntry: meta("serviceentry") + clusterEntryField,
				LogHost:         "%REQ(:AUTHORITY)%",
				LogMethod:       "%REQ(:METHOD)%",
				LogPath:         "%REQ(:PATH)%",
				LogProtocol:     "%PROTOCOL%",
				LogStatus:       "%RESPONSE_CODE%",
				LogLocation:     "%RESP(LOCATION)%",
				LogDetails:      "%RESPONSE_CODE_DETAILS%",
			}))
		}
	}
	if o.ALSCluster != "" {
		metaTag := func(tag string, kind *metadatav3.MetadataKind, key string) *tracingv3.CustomTag {
			return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
				Kind:        kind,
				MetadataKey: &metadatav3.MetadataKey{Key: routeMetadataKey, Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: key}}}},
			}}}
		}
		route := &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Route_{Route: &metadatav3.MetadataKind_Route{}}}
		cluster := &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Cluster_{Cluster: &metadatav3.MetadataKind_Cluster{}}}
		tags := []*tracingv3.CustomTag{
			literalTag(TagLayer, "http"),
			literalTag(TagPort, fmt.Sprint(port)),
			metaTag(TagServiceEntry, route, "serviceentry"),
			metaTag(TagClusterServiceEntry, cluster, "serviceentry"),
			metaTag(TagVerdict, route, "verdict"),
			metaTag(TagReason, route, "reason"),
		}
		if mesh {
			tags = append(tags, literalTag(TagMesh, "true"))
		}
		out = append(out, &accesslogv3.AccessLog{
			Name: "envoy.access_loggers.http_grpc",
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpcalsv3.HttpGrpcAccessLogConfig{
				CommonConfig: alsCommon(o, tags),
				// Redirects: the intake links a 3xx to the request that
				// follows its Location.
				AdditionalResponseHeadersToLog: []string{"location"},
			})},
		})
	}
	return out
}

// celFilter is an access log filter of one CEL expression; nil for "".
func celFilter(expr string) *accesslogv3.AccessLogFilter {
	if expr == "" {
		return nil
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
		ExtensionFilter: &accesslogv3.ExtensionFilter{
			Name:       "envoy.access_loggers.extension_filters.cel",
			ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: expr})},
		},
	}}
}

func literalTag(tag, value string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: value}}}
}

// alsCommon is the gRPC access log configuration every gateway logger
// shares but for its tags. Envoy opens one stream per distinct
// configuration, so literal tags never name a host or an entry: they carry
// only a bounded set of values (layer, verdict, reason, port). What varies
// per request comes from route metadata (HTTP) or from the one formatter
// tag every TCP logger has, the filter chain's name.
func alsCommon(o Options, tags []*tracingv3.CustomTag) *grpcalsv3.CommonGrpcAccessLogConfig {
	return &grpcalsv3.CommonGrpcAccessLogConfig{
		LogName: ALSLogName,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: o.ALSCluster},
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		BufferFlushInterval: durationpb.New(alsFlushInterval),
		BufferSizeBytes:     wrapperspb.UInt32(alsBufferBytes),
		CustomTags:          tags,
	}
}

// tcpLog describes the fixed part of a TCP or TLS chain's log lines.
type tcpLog struct {
	layer        vocab.Layer
	verdict      vocab.Verdict
	reason       vocab.Reason
	serviceEntry string
	// mesh marks the mesh listener's chains (see TagMesh).
	mesh bool
	// filter is an optional CEL expression selecting the connections logged.
	filter string
}

// tcpAccessLog logs every connection on one filter chain.
func tcpAccessLog(o Options, port uint32, logs ...tcpLog) []*accesslogv3.AccessLog {
	out := make([]*accesslogv3.AccessLog, 0, 2*len(logs))
	for _, l := range logs {
		filter := celFilter(l.filter)
		if o.AccessLogPath != "" {
			out = append(out, fileLog(o, filter, port, map[string]string{
				LogLayer:        string(l.layer),
				LogVerdict:      string(l.verdict),
				LogReason:       string(l.reason),
				LogServiceEntry: l.serviceEntry,
				LogHost:         "%REQUESTED_SERVER_NAME%",
				LogDestination:  "%DOWNSTREAM_LOCAL_ADDRESS%",
				LogChain:        "%FILTER_CHAIN_NAME%",
			}))
		}
		if o.ALSCluster != "" {
			tags := []*tracingv3.CustomTag{
				literalTag(TagLayer, string(l.layer)),
				literalTag(TagVerdict, string(l.verdict)),
				literalTag(TagReason, string(l.reason)),
				literalTag(TagPort, fmt.Sprint(port)),
				{Tag: TagChain, Type: &tracingv3.CustomTag_Value{Value: "%FILTER_CHAIN_NAME%"}},
			}
			if l.mesh {
				tags = append(tags, literalTag(TagMesh, "true"))
			}
			out = append(out, &accesslogv3.AccessLog{
				Name:   "envoy.access_loggers.tcp_grpc",
				Filter: filter,
				ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpcalsv3.TcpGrpcAccessLogConfig{
					CommonConfig: alsCommon(o, tags),
				})},
			})
		}
	}
	return out
}

// fileLog is a JSON file access log with the fields every line has (time,
// port, source, upstream, flags, duration, bytes) plus the given ones.
func fileLog(o Options, filter *accesslogv3.AccessLogFilter, port uint32, fields map[string]string) *accesslogv3.AccessLog {
	format := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	common := map[string]string{
		LogTime:       "%START_TIME%",
		LogPort:       fmt.Sprint(port),
		LogSource:     "%DOWNSTREAM_REMOTE_ADDRESS%",
		LogUpstream:   "%UPSTREAM_HOST%",
		LogCluster:    "%UPSTREAM_CLUSTER%",
		LogFlags:      "%RESPONSE_FLAGS%",
		LogDurationMs: "%DURATION%",
		LogBytesIn:    "%BYTES_RECEIVED%",
		LogBytesOut:   "%BYTES_SENT%",
	}
	for k, v := range common {
		format.Fields[k] = structpb.NewStringValue(v)
	}
	for k, v := range fields {
		format.Fields[k] = structpb.NewStringValue(v)
	}
	return &accesslogv3.AccessLog{
		Name:   "envoy.access_loggers.file",
		Filter: filter,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&fileaccesslogv3.FileAccessLog{
			Path: o.AccessLogPath,
			AccessLogFormat: &fileaccesslogv3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format:          &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: format},
				OmitEmptyValues: true,
			}},
		})},
	}
}
