package xds

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	statsalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stats/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/serviceentry"
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
	// TagAbsent is "true" when the upstream cluster is an absent one
	// (on-demand discovery's answer for a name that is no cluster): the
	// destination is not in the registry.
	TagAbsent = "egressd.absent"
)

// absentExpr is true when the upstream cluster is an absent one. It never
// errs (a CEL filter that errs does not match): without an upstream
// cluster the first term is false.
const absentExpr = "(has(xds.cluster_name) && has(xds.cluster_metadata.filter_metadata." + absentMetadata + "))"

// clusterMetadataField is Envoy's format command for a value of the
// upstream cluster's metadata (namespace, key); "-" without one.
func clusterMetadataField(namespace, key string) string {
	return "%CLUSTER_METADATA(" + namespace + ":" + key + ")%"
}

// clusterTag is a tag of the upstream cluster's metadata. Envoy's
// metadata custom tags do not read a cluster's metadata in access logs;
// its formatter does.
func clusterTag(tag, namespace, key string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: tag, Type: &tracingv3.CustomTag_Value{Value: clusterMetadataField(namespace, key)}}
}

// absentTag reads the absent mark from the upstream cluster's metadata.
func absentTag() *tracingv3.CustomTag { return clusterTag(TagAbsent, absentMetadata, "absent") }

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
func httpAccessLog(o Options, port uint32, mesh, byHost, proxy bool) []*accesslogv3.AccessLog {
	var out []*accesslogv3.AccessLog
	if o.AccessLogPath != "" {
		type variant struct {
			filter          string
			verdict, reason string // literal; empty: from the route's metadata
		}
		variants := []variant{{}}
		if byHost {
			variants = []variant{
				{filter: "!(response.code_details == 'cluster_not_found' || " + absentExpr + ")"},
				{filter: "response.code_details == 'cluster_not_found' || " + absentExpr, verdict: string(vocab.VerdictDeny), reason: string(vocab.ReasonNotInRegistry)},
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
		tags := []*tracingv3.CustomTag{
			literalTag(TagLayer, "http"),
			literalTag(TagPort, fmt.Sprint(port)),
			metaTag(TagServiceEntry, route, "serviceentry"),
			clusterTag(TagClusterServiceEntry, routeMetadataKey, "serviceentry"),
			metaTag(TagVerdict, route, "verdict"),
			metaTag(TagReason, route, "reason"),
		}
		if o.ODCDSCluster != "" {
			tags = append(tags, absentTag())
		}
		if mesh {
			tags = append(tags, literalTag(TagMesh, "true"))
		}
		if proxy {
			tags = append(tags, literalTag(TagVia, ViaProxy))
		}
		var individual *accesslogv3.AccessLogFilter
		// The proxy's clients with an identity are named on every
		// decision: no summaries for them.
		identified := proxy && (len(o.ProxyIdentities) > 0 || o.ProxyRequireIdentity)
		if o.SummarizeAllowed && !mesh && !identified {
			individual = individualFilter(o)
			if o.AllowedSample > 0 {
				individual = orFilter(individual, sampleFilter(o.AllowedSample))
			}
			summary := allowedSummary(o, port)
			if proxy {
				// A CONNECT is reported one by one: its authority names
				// its port, which the summaries do not keep.
				individual = orFilter(individual, connectFilter(false))
				summary.Filter = andFilter(summary.Filter, connectFilter(true))
			}
			if o.SourceScope {
				// A dry run's would-be denial is an audit-deny decision:
				// reported one by one, not counted as allowed.
				individual = orFilter(individual, shadowDeniedFilter(false))
				summary.Filter = andFilter(summary.Filter, shadowDeniedFilter(true))
			}
			out = append(out, summary)
		}
		out = append(out, &accesslogv3.AccessLog{
			Name:   "envoy.access_loggers.http_grpc",
			Filter: individual,
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

// allowedExpr selects, under ALLOW_ANY and AUDIT, the HTTP requests that
// are summarized rather than reported one by one: a listed host's (route
// reason allowed), answered 2xx. Everything else (a denial, a redirect,
// an error, an audit-deny or allow_any, a request no route took) is
// reported one by one.
const allowedExpr = "response.code >= 200 && response.code < 300 && " +
	"xds.route_metadata.filter_metadata['" + routeMetadataKey + "']['reason'] == 'allowed'"

// Allowed-request stats (envoy.access_loggers.stats): one counter per
// host, port and ServiceEntry, which the gateway's metrics service sink
// reports to egressd as deltas.
const (
	// AllowedStatPrefix is the stats scope of the counters.
	AllowedStatPrefix = "egressd_allowed"
	// Counter names, under the prefix.
	AllowedRequests      = "requests"
	AllowedBytesReceived = "bytes_received"
	AllowedBytesSent     = "bytes_sent"
	// Tags of every counter.
	AllowedTagHost         = "host"
	AllowedTagPort         = "port"
	AllowedTagRouteEntry   = "route_serviceentry"
	AllowedTagClusterEntry = "cluster_serviceentry"
	// allowedMaxCounters bounds the counters (three per host, port and
	// entry): a wildcard host's requests name any subdomain.
	allowedMaxCounters = 3 * 20000
)

// Under REGISTRY_ONLY every request a route took is a listed host's, so
// the filters need not read the route's reason and are Envoy's own,
// status codes only: a request answered 2xx is summarized, any other is
// reported one by one (every denial is a 403 or 502 of the gateway's own,
// every redirect a 3xx, every upstream failure a 5xx). A 2xx whose stream
// then failed (a response flag after the headers) is summarized as the
// allowed request it was. Under ALLOW_ANY and AUDIT the route's reason
// tells a listed host from an unlisted one (CEL).
func individualFilter(o Options) *accesslogv3.AccessLogFilter {
	if o.Outbound != serviceentry.RegistryOnly {
		return celFilter("!(" + allowedExpr + ")")
	}
	return orFilter(statusFilter(accesslogv3.ComparisonFilter_LE, 199), statusFilter(accesslogv3.ComparisonFilter_GE, 300))
}

// summaryFilter is individualFilter's complement.
func summaryFilter(o Options) *accesslogv3.AccessLogFilter {
	if o.Outbound != serviceentry.RegistryOnly {
		return celFilter(allowedExpr)
	}
	return andFilter(statusFilter(accesslogv3.ComparisonFilter_GE, 200), statusFilter(accesslogv3.ComparisonFilter_LE, 299))
}

// shadowDeniedFilter takes the requests the HTTP RBAC's shadow rules
// would have denied (a dry run's; authz.ShadowDenied reads the same), or
// with invert all the others.
func shadowDeniedFilter(invert bool) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{MetadataFilter: &accesslogv3.MetadataFilter{
		Matcher: &matcherv3.MetadataMatcher{
			Filter: authz.HTTPFilterName,
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "shadow_engine_result"}}},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "denied"},
			}}},
			Invert: invert,
		},
		MatchIfKeyNotFound: wrapperspb.Bool(invert),
	}}}
}

// connectFilter takes the CONNECT requests, or with invert all others.
func connectFilter(invert bool) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
		Header: &routev3.HeaderMatcher{
			Name:        ":method",
			InvertMatch: invert,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "CONNECT"},
			}},
		},
	}}}
}

func orFilter(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: fs}}}
}

func andFilter(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
}

func statusFilter(op accesslogv3.ComparisonFilter_Op, code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: fmt.Sprintf("egressd.status_%d", code)}},
	}}}
}

// allowedSummary counts the requests summaryFilter selects, with their
// bytes, by host, port and ServiceEntry.
func allowedSummary(o Options, port uint32) *accesslogv3.AccessLog {
	stat := func(name string) *statsalv3.Config_Stat {
		return &statsalv3.Config_Stat{Name: name, Tags: []*statsalv3.Config_Tag{
			{Name: AllowedTagHost, ValueFormat: "%REQ(:AUTHORITY)%"},
			{Name: AllowedTagPort, ValueFormat: fmt.Sprint(port)},
			{Name: AllowedTagRouteEntry, ValueFormat: fmt.Sprintf("%%METADATA(ROUTE:%s:serviceentry)%%", routeMetadataKey)},
			{Name: AllowedTagClusterEntry, ValueFormat: clusterEntryField},
		}}
	}
	return &accesslogv3.AccessLog{
		Name:   "envoy.access_loggers.stats",
		Filter: summaryFilter(o),
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&statsalv3.Config{
			StatsScope: &typev3.Scope{Prefix: AllowedStatPrefix, MaxCounters: wrapperspb.UInt32(allowedMaxCounters)},
			Counters: []*statsalv3.Config_Counter{
				{Stat: stat(AllowedRequests), ValueFixed: wrapperspb.UInt64(1)},
				{Stat: stat(AllowedBytesReceived), ValueFormat: "%BYTES_RECEIVED%"},
				{Stat: stat(AllowedBytesSent), ValueFormat: "%BYTES_SENT%"},
			},
		})},
	}
}

// sampleFilter passes percent of the requests, at random.
func sampleFilter(percent float64) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_RuntimeFilter{RuntimeFilter: &accesslogv3.RuntimeFilter{
		RuntimeKey: "egressd.allowed_sample",
		PercentSampled: &typev3.FractionalPercent{
			Numerator:   uint32(percent * 10000),
			Denominator: typev3.FractionalPercent_MILLION,
		},
	}}}
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
			if o.ODCDSCluster != "" {
				tags = append(tags, absentTag())
			}
			if l.serviceEntry == clusterEntryField {
				// The chain chose the cluster (by SNI or address): the
				// cluster names the entry.
				tags = append(tags, clusterTag(TagClusterServiceEntry, routeMetadataKey, "serviceentry"))
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
