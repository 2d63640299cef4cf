package envoy

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/egressd/egressd/egress/xdsauth"
)

// XDSClusterName is the static cluster in the bootstrap that reaches
// egressd's ADS server. Other configuration (for example a gRPC access log
// service on the same server) may refer to it.
const XDSClusterName = "egressd_xds"

// Defaults used by Bootstrap for empty BootstrapConfig fields.
const (
	// DefaultNodeID is the node id sent to the xDS server.
	DefaultNodeID = "egressd-gateway"
	// DefaultCluster is the node cluster sent to the xDS server.
	DefaultCluster = "egressd"
	// DefaultAdminAddress keeps Envoy's admin interface on loopback: it can
	// change the running configuration and must never be exposed.
	DefaultAdminAddress = "127.0.0.1:15001"
	// DefaultXDSConnectTimeout bounds a connection attempt to the xDS server.
	DefaultXDSConnectTimeout = time.Second
	// DefaultMaxDownstreamConnections bounds the gateway's open downstream
	// connections (Envoy warns at start when there is no bound).
	DefaultMaxDownstreamConnections = 50000
)

// BootstrapConfig is what the Envoy bootstrap needs to know; everything else
// Envoy learns over ADS. Empty fields take the Default* values; only
// XDSAddress is required.
type BootstrapConfig struct {
	// NodeID and Cluster are the node identity sent to the xDS server.
	NodeID, Cluster string
	// XDSAddress is the host:port of egressd's ADS gRPC server, spoken as
	// plaintext HTTP/2 (meant for loopback). The host may be an IP or a
	// name; a name is resolved by Envoy (STRICT_DNS). Required.
	XDSAddress string
	// XDSConnectTimeout bounds one connection attempt to the xDS server.
	XDSConnectTimeout time.Duration
	// AdminAddress is the ip:port of Envoy's admin interface. The IP must be
	// a literal; loopback is strongly advised.
	AdminAddress string
	// MaxDownstreamConnections is the global bound on open downstream
	// connections, enforced by Envoy's overload manager: past it new
	// connections are refused, so a flood cannot exhaust Envoy's file
	// descriptors (each allowed connection also holds one upstream).
	MaxDownstreamConnections int64
	// XDSCredentialsDir is the folder of the gateway's xDS client
	// credentials (xdsauth.CredentialFiles: the managed Envoy's under
	// --run-dir, a gateway pod's mounted Secret). Envoy reads its client
	// certificate and the mesh CA bundle from there by file-based SDS and
	// reloads them when the folder's ..data link is swapped. Empty: the
	// xDS connection is plaintext (only for --xds-insecure).
	XDSCredentialsDir string
	// XDSServerIdentity is the SPIFFE ID egressd's certificate must name
	// (a URI SAN); required with XDSCredentialsDir.
	XDSServerIdentity string
	// MaxHeapBytes, when set, is the heap Envoy may use: as it fills,
	// Envoy first returns free memory to the system and resets the
	// streams holding the most buffered data, then closes idle keep-alive
	// connections, and at 95 % stops accepting requests and new
	// connections until memory is freed, instead of growing until it is
	// killed.
	MaxHeapBytes uint64
	// HostStats keeps the stats of every host's cluster and filter chain
	// (cluster.outbound|..., tcp.tls|<port>|<host>...). Off, Envoy keeps
	// only the gateway's own: listeners, connection managers, the by-SNI,
	// unlisted and deny chains, the dynamic clusters, the server. At
	// 10,000 entries the per-host ones are over a million stats and about
	// a third of Envoy's memory.
	HostStats bool
	// SummaryFlush, when set, is how often the gateway reports its stats
	// to egressd's metrics service (over the xDS connection): the counts of
	// the allowed requests it summarizes rather than logs one by one
	// (xds.Options.SummarizeAllowed). Zero: no metrics sink.
	SummaryFlush time.Duration
}

// hostStatPatterns match the stats of one host's cluster or filter chain:
// its cluster (named after the host), a TLS chain named after a host
// (tcp.tls|<port>|<host>.<stat>: a host has a dot of its own before the
// stat's, by_sni and unlisted have none), a TCP chain named after a
// ServiceEntry (namespace/name). Envoy matches a regex against the whole
// name, hence the trailing ".*".
var hostStatPatterns = []*matcherv3.StringMatcher{
	{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "cluster.outbound|"}},
	{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `^tcp\.(mesh\|)?tls\|[0-9]+\|[^|.]*\.[^|]*\..*`}}},
	{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `^tcp\.tcp\|[0-9]+\|[^|]*/.*`}}},
}

// statsConfig keeps the host stats out unless asked for.
func statsConfig(c BootstrapConfig) *metricsv3.StatsConfig {
	if c.HostStats {
		return nil
	}
	return &metricsv3.StatsConfig{StatsMatcher: &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_ExclusionList{
		ExclusionList: &matcherv3.ListStringMatcher{Patterns: hostStatPatterns},
	}}}
}

func (c BootstrapConfig) withDefaults() (BootstrapConfig, error) {
	if c.NodeID == "" {
		c.NodeID = DefaultNodeID
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.AdminAddress == "" {
		c.AdminAddress = DefaultAdminAddress
	}
	if c.XDSConnectTimeout <= 0 {
		c.XDSConnectTimeout = DefaultXDSConnectTimeout
	}
	if c.MaxDownstreamConnections <= 0 {
		c.MaxDownstreamConnections = DefaultMaxDownstreamConnections
	}
	if c.XDSAddress == "" {
		return c, fmt.Errorf("xds address is empty: set it to the host:port of egressd's ADS server, e.g. 127.0.0.1:18000")
	}
	if c.XDSCredentialsDir != "" && c.XDSServerIdentity == "" {
		return c, fmt.Errorf("xds credentials in %s but no server identity: set the SPIFFE ID egressd's certificate names", c.XDSCredentialsDir)
	}
	if c.XDSCredentialsDir != "" && !filepath.IsAbs(c.XDSCredentialsDir) {
		return c, fmt.Errorf("xds credentials folder %q: must be an absolute path", c.XDSCredentialsDir)
	}
	return c, nil
}

// Bootstrap builds Envoy's static bootstrap: the node identity, the admin
// interface, one static cluster to egressd's ADS server, listeners and
// clusters over ADS, and a bound on downstream connections. The result has
// passed ValidateAll.
func Bootstrap(c BootstrapConfig) (*bootstrapv3.Bootstrap, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	admin, err := adminAddress(c.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: admin address: %w", err)
	}
	xds, err := xdsCluster(c)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: xds address: %w", err)
	}
	overload, err := overloadManager(c.MaxDownstreamConnections, c.MaxHeapBytes)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	adminLog, err := anypb.New(&filev3.FileAccessLog{Path: "/dev/null"})
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: admin access log: %w", err)
	}
	ads := func() *corev3.ConfigSource {
		return &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		}
	}

	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: c.NodeID, Cluster: c.Cluster},
		Admin: &bootstrapv3.Admin{
			Address: admin,
			AccessLog: []*accesslogv3.AccessLog{{
				Name:       "envoy.access_loggers.file",
				ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: adminLog},
			}},
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{xds},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_DELTA_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName},
					},
				}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		OverloadManager: overload,
		StatsConfig:     statsConfig(c),
		StatsSinks:      statsSinks(c),
		// A cluster's traffic stats are made when it first carries
		// traffic, not for every cluster of the allowlist.
		DeferredStatOptions: &bootstrapv3.Bootstrap_DeferredStatOptions{EnableDeferredCreationStats: true},
	}
	if c.SummaryFlush > 0 {
		b.StatsFlushInterval = durationpb.New(c.SummaryFlush)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: invalid: %w", err)
	}
	return b, nil
}

// statsSinks is egressd's metrics service, reached over the xDS cluster:
// counters as deltas since the last flush, tags as labels.
func statsSinks(c BootstrapConfig) []*metricsv3.StatsSink {
	if c.SummaryFlush <= 0 {
		return nil
	}
	sink := &metricsv3.MetricsServiceConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName},
		}},
		TransportApiVersion:    corev3.ApiVersion_V3,
		ReportCountersAsDeltas: wrapperspb.Bool(true),
		EmitTagsAsLabels:       true,
	}
	return []*metricsv3.StatsSink{{
		Name:       "envoy.stat_sinks.metrics_service",
		ConfigType: &metricsv3.StatsSink_TypedConfig{TypedConfig: mustAnyBootstrap(sink)},
	}}
}

func mustAnyBootstrap(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // a known message type
	}
	return a
}

// BootstrapYAML is Bootstrap rendered as YAML with proto field names, ready
// for `envoy -c`. Equal configs give identical bytes.
func BootstrapYAML(c BootstrapConfig) ([]byte, error) {
	b, err := Bootstrap(c)
	if err != nil {
		return nil, err
	}
	return marshalYAML(b)
}

// marshalYAML renders a proto as YAML. protojson's whitespace is not stable
// across runs, so the JSON is re-encoded: YAML keys come out sorted.
func marshalYAML(m proto.Message) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %T to JSON: %w", m, err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("convert %T to YAML: %w", m, err)
	}
	return y, nil
}

// adminAddress parses ip:port; Envoy's admin listener needs an IP literal.
func adminAddress(hostport string) (*corev3.Address, error) {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("%q must be ip:port, e.g. %s: %w", hostport, DefaultAdminAddress, err)
	}
	return socketAddress(ap.Addr().Unmap().String(), uint32(ap.Port())), nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// xdsCluster is the static cluster to egressd's ADS server: HTTP/2 (gRPC) in
// plaintext, STATIC for an IP, STRICT_DNS for a name, with TCP keepalive so a
// dead peer is noticed even when the stream is idle.
func xdsCluster(c BootstrapConfig) (*clusterv3.Cluster, error) {
	host, portStr, err := net.SplitHostPort(c.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("%q must be host:port, e.g. 127.0.0.1:18000: %w", c.XDSAddress, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%q: port %q must be a number from 1 to 65535", c.XDSAddress, portStr)
	}
	if host == "" {
		return nil, fmt.Errorf("%q: host is empty; use 127.0.0.1 for a local egressd", c.XDSAddress)
	}
	discovery := clusterv3.Cluster_STRICT_DNS
	if ip, err := netip.ParseAddr(host); err == nil {
		discovery = clusterv3.Cluster_STATIC
		host = ip.Unmap().String()
	}

	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("http protocol options: %w", err)
	}

	cl := &clusterv3.Cluster{
		Name:                 XDSClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(c.XDSConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: XDSClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(host, uint32(port)),
					}},
				}},
			}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
		},
		UpstreamConnectionOptions: &clusterv3.UpstreamConnectionOptions{
			TcpKeepalive: &corev3.TcpKeepalive{
				KeepaliveProbes:   wrapperspb.UInt32(3),
				KeepaliveTime:     wrapperspb.UInt32(30),
				KeepaliveInterval: wrapperspb.UInt32(5),
			},
		},
	}
	if c.XDSCredentialsDir != "" {
		ts, err := xdsTLS(c)
		if err != nil {
			return nil, err
		}
		cl.TransportSocket = ts
	}
	if discovery == clusterv3.Cluster_STRICT_DNS {
		// A name like "localhost" often resolves to ::1 first while the
		// server listens on 127.0.0.1: prefer IPv4, fall back to IPv6.
		cl.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	return cl, nil
}

// xdsTLS is the xDS cluster's mutual TLS: the client certificate and the
// CA bundle from the credential folder by file-based SDS (watched, so a
// renewal is picked up without a restart), egressd's certificate verified
// to name XDSServerIdentity, HTTP/2 by ALPN.
func xdsTLS(c BootstrapConfig) (*corev3.TransportSocket, error) {
	sds := func(name, file string) *tlsv3.SdsSecretConfig {
		return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{
				Path:             filepath.Join(c.XDSCredentialsDir, file),
				WatchedDirectory: &corev3.WatchedDirectory{Path: c.XDSCredentialsDir},
			}},
		}}
	}
	ctx, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(xdsauth.SecretClientCert, xdsauth.FileTLSCertificate)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: c.XDSServerIdentity}},
			}}},
			ValidationContextSdsSecretConfig: sds(xdsauth.SecretTrustBundle, xdsauth.FileValidationContext),
		}},
	}})
	if err != nil {
		return nil, fmt.Errorf("xds TLS: %w", err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}, nil
}

// overloadManager bounds open downstream connections with the
// global_downstream_max_connections resource monitor (without a bound Envoy
// warns at start and accepts connections until it runs out of file
// descriptors; this monitor replaces the deprecated runtime key
// "overload.global_downstream_max_connections"), and, when maxHeap is set,
// the heap with the fixed_heap monitor and these actions:
//
//	heap 90 %: shrink_heap (return free memory), reset_high_memory_stream
//	           (scaled from 85 %: streams buffering the most are reset first)
//	heap 80-95 %: disable_http_keepalive (scaled)
//	heap 95 %: stop_accepting_requests, and the tcp_listener_accept load
//	           shed point refuses new connections
func overloadManager(maxConnections int64, maxHeap uint64) (*overloadv3.OverloadManager, error) {
	mon, err := anypb.New(&downstreamv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: maxConnections})
	if err != nil {
		return nil, fmt.Errorf("overload manager: %w", err)
	}
	om := &overloadv3.OverloadManager{
		ResourceMonitors: []*overloadv3.ResourceMonitor{{
			Name:       "envoy.resource_monitors.global_downstream_max_connections",
			ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: mon},
		}},
	}
	if maxHeap == 0 {
		return om, nil
	}
	heap, err := anypb.New(&fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: maxHeap})
	if err != nil {
		return nil, fmt.Errorf("overload manager: %w", err)
	}
	const heapMonitor = "envoy.resource_monitors.fixed_heap"
	om.RefreshInterval = durationpb.New(250 * time.Millisecond)
	om.ResourceMonitors = append(om.ResourceMonitors, &overloadv3.ResourceMonitor{
		Name:       heapMonitor,
		ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: heap},
	})
	threshold := func(v float64) []*overloadv3.Trigger {
		return []*overloadv3.Trigger{{Name: heapMonitor, TriggerOneof: &overloadv3.Trigger_Threshold{Threshold: &overloadv3.ThresholdTrigger{Value: v}}}}
	}
	scaled := func(from, to float64) []*overloadv3.Trigger {
		return []*overloadv3.Trigger{{Name: heapMonitor, TriggerOneof: &overloadv3.Trigger_Scaled{Scaled: &overloadv3.ScaledTrigger{ScalingThreshold: from, SaturationThreshold: to}}}}
	}
	om.Actions = []*overloadv3.OverloadAction{
		{Name: "envoy.overload_actions.shrink_heap", Triggers: threshold(0.90)},
		{Name: "envoy.overload_actions.reset_high_memory_stream", Triggers: scaled(0.85, 0.95)},
		{Name: "envoy.overload_actions.disable_http_keepalive", Triggers: scaled(0.80, 0.95)},
		{Name: "envoy.overload_actions.stop_accepting_requests", Triggers: threshold(0.95)},
	}
	// Streams buffering 1 MiB or more are tracked, so the largest can be
	// reset first.
	om.BufferFactoryConfig = &overloadv3.BufferFactoryConfig{MinimumAccountToTrackPowerOfTwo: 20}
	om.LoadshedPoints = []*overloadv3.LoadShedPoint{
		{Name: "envoy.load_shed_points.tcp_listener_accept", Triggers: threshold(0.95)},
	}
	return om, nil
}
