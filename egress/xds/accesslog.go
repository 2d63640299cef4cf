package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	"google.golang.org/protobuf/types/known/structpb"
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

// Verdicts and reasons written by the gateway.
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"

	ReasonAllowed         = "allowed"
	ReasonAllowAny        = "allow_any"
	ReasonNotInRegistry   = "not_in_registry"
	ReasonNoSNI           = "no_sni"
	ReasonUnidentifiedTCP = "unidentified_tcp"
)

// routeMetadataKey is the filter_metadata namespace on routes that carries
// verdict, reason and ServiceEntry into the HTTP access log.
const routeMetadataKey = "egressd"

// httpAccessLog logs every HTTP request on a gateway port; the verdict comes
// from the matched route's metadata.
func httpAccessLog(o Options, port uint32) []*accesslogv3.AccessLog {
	meta := func(key string) string { return fmt.Sprintf("%%METADATA(ROUTE:%s:%s)%%", routeMetadataKey, key) }
	return []*accesslogv3.AccessLog{fileLog(o, nil, port, map[string]string{
		LogLayer:        "http",
		LogVerdict:      meta("verdict"),
		LogReason:       meta("reason"),
		LogServiceEntry: meta("serviceentry"),
		LogHost:         "%REQ(:AUTHORITY)%",
		LogMethod:       "%REQ(:METHOD)%",
		LogPath:         "%REQ(:PATH)%",
		LogProtocol:     "%PROTOCOL%",
		LogStatus:       "%RESPONSE_CODE%",
		LogLocation:     "%RESP(LOCATION)%",
		LogDetails:      "%RESPONSE_CODE_DETAILS%",
	})}
}

// tcpLog describes the fixed part of a TCP or TLS chain's log lines.
type tcpLog struct {
	layer, verdict, reason, serviceEntry string
	// filter is an optional CEL expression selecting the connections logged.
	filter string
}

// tcpAccessLog logs every connection on one filter chain.
func tcpAccessLog(o Options, port uint32, logs ...tcpLog) []*accesslogv3.AccessLog {
	out := make([]*accesslogv3.AccessLog, 0, len(logs))
	for _, l := range logs {
		var filter *accesslogv3.AccessLogFilter
		if l.filter != "" {
			filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
				ExtensionFilter: &accesslogv3.ExtensionFilter{
					Name:       "envoy.access_loggers.extension_filters.cel",
					ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: l.filter})},
				},
			}}
		}
		out = append(out, fileLog(o, filter, port, map[string]string{
			LogLayer:        l.layer,
			LogVerdict:      l.verdict,
			LogReason:       l.reason,
			LogServiceEntry: l.serviceEntry,
			LogHost:         "%REQUESTED_SERVER_NAME%",
			LogDestination:  "%DOWNSTREAM_LOCAL_ADDRESS%",
			LogChain:        "%FILTER_CHAIN_NAME%",
		}))
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
