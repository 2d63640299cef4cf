package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/set_filter_state/v3"
	snidfpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/sni_dynamic_forward_proxy/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// MeshOptions turn on the mesh listener: mesh callers (Istio sidecars,
// workloads with an SVID) reach allowed hosts over mutual TLS, so the
// gateway knows who calls and AuthorizationPolicies can say who may.
type MeshOptions struct {
	// Port is the mesh listener's service port (default 15443); the
	// listener binds Port + PortOffset like the others.
	Port uint32
	// CertSecret and BundleSecret are the SDS secrets of the gateway's
	// own certificate and of the mesh trust bundle.
	CertSecret, BundleSecret string
}

// portListener is the listener of one service port. It does not depend on
// the port's route table (the HTTP chain names it), so it is reused when
// only the routes change.
func (b *builder) portListener(p *gateway.Port) *listenerv3.Listener {
	node := *p
	node.Routes = nil
	return reuse(b, memoListener, vocab.ListenerName(p.Number), &node, func() *listenerv3.Listener {
		l := &listenerv3.Listener{
			Name:                          vocab.ListenerName(p.Number),
			Address:                       socketAddress(b.o.ListenAddress, p.Listen),
			PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
			// A client of a server-first protocol sends nothing: let it
			// through to the plaintext chains instead of holding it for 15 s.
			ContinueOnListenerFiltersTimeout: true,
		}
		if p.InspectTLS {
			l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
		}
		if p.OriginalDestination {
			// Restores the destination of connections redirected to the
			// gateway (iptables REDIRECT/TPROXY), so chains can match it.
			l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
				Name:       "envoy.filters.listener.original_dst",
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
			})
		}
		if p.BoundedInspection {
			l.ListenerFiltersTimeout = durationpb.New(1e9)
		}
		for _, c := range p.Chains {
			l.FilterChains = append(l.FilterChains, b.chain(c, nil))
		}
		if p.Default != nil {
			l.DefaultFilterChain = b.chain(p.Default, nil)
		}
		return l
	})
}

// meshListener terminates mesh mTLS and then treats the inner traffic as
// the model says: HTTP through the port's route table, TLS passed through
// to the host. AuthorizationPolicies apply as Envoy RBAC filters.
func (b *builder) meshListener(m *gateway.Mesh) *listenerv3.Listener {
	return reuse(b, memoListener, vocab.MeshListenerName, m, func() *listenerv3.Listener {
		l := &listenerv3.Listener{
			Name:                          vocab.MeshListenerName,
			Address:                       socketAddress(b.o.ListenAddress, m.Listen),
			PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
			ListenerFilters:               []*listenerv3.ListenerFilter{tlsInspector()},
		}
		for _, c := range m.Chains {
			l.FilterChains = append(l.FilterChains, b.chain(c, m))
		}
		l.DefaultFilterChain = b.chain(m.Default, m)
		return l
	})
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// chain builds one filter chain; mesh is the mesh listener's model for its
// chains (nil elsewhere).
func (b *builder) chain(c *gateway.Chain, mesh *gateway.Mesh) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{Name: c.Name, FilterChainMatch: chainMatch(c.Match)}
	if c.MeshTLS {
		fc.TransportSocket = b.meshTLS(mesh.Mode)
	}
	if c.HTTP != nil {
		var policies []*serviceentry.AuthorizationPolicy
		if c.HTTP.Mesh {
			policies = mesh.Policies
		}
		fc.Filters = []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(b.httpConnectionManager(c.HTTP, c.Port, policies))},
		}}
		return fc
	}
	f := c.Forward
	if mesh == nil && b.o.SourceScope && scopedChain(c) {
		fc.Filters = append(fc.Filters, sourceScopeNetworkFilter(c.Port))
	}
	if f.AuthorizeHost != "" {
		// Inside mesh TLS the server name Envoy sees is the mesh one: the
		// policies' hosts are decided for this chain's host.
		fc.Filters = append(fc.Filters, authz.NetworkFilters(authz.ForHost(mesh.Policies, f.AuthorizeHost))...)
	}
	if f.ClusterBySNI {
		fc.Filters = append(fc.Filters, clusterBySNIFilter(c.Port))
	}
	if f.ClusterByAddress {
		fc.Filters = append(fc.Filters, clusterByAddressFilter(c.Port))
	}
	if f.ResolveSNIPort != 0 {
		fc.Filters = append(fc.Filters, absoluteSNIFilter(), b.sniForwardFilter(f.ResolveSNIPort))
	}
	var onDemand *corev3.ConfigSource
	if b.o.ODCDSCluster != "" && (f.ClusterBySNI || f.ClusterByAddress || f.Cluster != BlackholeCluster && f.Cluster != OriginalDstCluster) {
		onDemand = onDemandSource(b.o.ODCDSCluster)
	}
	var tunnel *tcpproxyv3.TcpProxy_TunnelingConfig
	if up := b.o.UpstreamProxy; up != nil && (f.ClusterBySNI || chained(f.Cluster)) {
		host := "%REQUESTED_SERVER_NAME%"
		if f.AuthorizeHost != "" {
			host = f.AuthorizeHost // inside mesh TLS the SNI is the mesh's
		}
		tunnel = tunneling(fmt.Sprintf("%s:%d", host, c.Port), up)
	}
	fc.Filters = append(fc.Filters, tcpProxyFilter(c.Name, f.Cluster, b.tcpLogs(c.Port, f.Logs), onDemand, tunnel))
	return fc
}

// chainMatch is a chain's filter_chain_match; nil when it matches all.
func chainMatch(m gateway.Match) *listenerv3.FilterChainMatch {
	if len(m.ServerNames) == 0 && m.Transport == "" && len(m.Destinations) == 0 {
		return nil
	}
	fcm := &listenerv3.FilterChainMatch{ServerNames: m.ServerNames, TransportProtocol: m.Transport}
	for _, pfx := range m.Destinations {
		fcm.PrefixRanges = append(fcm.PrefixRanges, cidr(pfx))
	}
	return fcm
}

// meshTLS is the downstream TLS of the mesh listener: the gateway's SVID,
// callers verified against the trust bundle; a certificate is required
// under STRICT and optional otherwise (a caller without one is recorded
// as unauthenticated; one from another CA is refused). Built once per
// translation; every mesh chain shares it.
func (b *builder) meshTLS(mode serviceentry.MTLSMode) *corev3.TransportSocket {
	if b.downstream != nil {
		return b.downstream
	}
	m := b.o.Mesh
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(mode == serviceentry.MTLSStrict),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(m.CertSecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret(m.BundleSecret),
			},
		},
	}
	b.downstream = &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
	return b.downstream
}

// tcpLogs is tcpAccessLog of a chain's log lines, built once per distinct
// configuration: with thousands of TLS hosts on a port every chain logs
// alike (the entry's name only goes into the optional file log), and
// marshalling the same logger config for each chain was a quarter of a
// large translation. Sharing the messages is safe: they are only read
// from here on.
func (b *builder) tcpLogs(port uint32, lines []gateway.Log) []*accesslogv3.AccessLog {
	logs := make([]tcpLog, len(lines))
	for i, l := range lines {
		logs[i] = tcpLog{layer: l.Layer, verdict: l.Verdict, reason: l.Reason, serviceEntry: l.ServiceEntry, mesh: l.Mesh, filter: logFilters[l.When]}
		if l.ServiceEntryFromCluster {
			logs[i].serviceEntry = clusterEntryField
		}
	}
	key := make([]tcpLog, len(logs))
	copy(key, logs)
	if b.o.AccessLogPath == "" {
		for i := range key {
			key[i].serviceEntry = ""
		}
	}
	k := fmt.Sprint(port, key)
	if out, ok := b.logs[k]; ok {
		return out
	}
	out := tcpAccessLog(b.o, port, logs...)
	b.logs[k] = out
	return out
}

// logFilters are the CEL expressions of the model's log conditions.
// xds.cluster_name is only set once tcp_proxy found the cluster; an absent
// cluster (on-demand discovery's "no such cluster") counts as none.
var logFilters = map[gateway.LogWhen]string{
	gateway.WhenAlways:        "",
	gateway.WhenSNI:           sniExpr,
	gateway.WhenNoSNI:         "connection.requested_server_name == ''",
	gateway.WhenClusterFound:  sniExpr + " && " + clusterFoundExpr,
	gateway.WhenClusterAbsent: sniExpr + " && (" + clusterAbsentExpr + ")",
	gateway.WhenAddressFound:  clusterFoundExpr,
	gateway.WhenAddressAbsent: clusterAbsentExpr,
}

// The parts of logFilters: the connection sent an SNI; the cluster the
// chain chose exists (and is not an absent one), or does not.
const (
	sniExpr           = "connection.requested_server_name != ''"
	clusterFoundExpr  = "has(xds.cluster_name) && !" + absentExpr
	clusterAbsentExpr = "!has(xds.cluster_name) || " + absentExpr
)

// clusterBySNIFilter makes tcp_proxy connect to the passthrough cluster
// the SNI names on port (see gateway's by-SNI chain).
func clusterBySNIFilter(port uint32) *listenerv3.Filter {
	return setFilterState("envoy.tcp_proxy.cluster", vocab.PassthroughClusterName("%REQUESTED_SERVER_NAME%", port))
}

// clusterByAddressFilter makes tcp_proxy connect to the cluster the
// destination address names on port (see gateway's by-address chain).
func clusterByAddressFilter(port uint32) *listenerv3.Filter {
	return setFilterState("envoy.tcp_proxy.cluster", vocab.AddressClusterName("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", port))
}

// setFilterState sets the connection's filter state key to format (an
// Envoy substitution format string) when the connection opens.
func setFilterState(key, format string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: "envoy.filters.network.set_filter_state",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&setfilterstatev3.Config{
			OnNewConnection: []*filterstatev3.FilterStateValue{{
				Key: &filterstatev3.FilterStateValue_ObjectKey{ObjectKey: key},
				Value: &filterstatev3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
						Specifier: &corev3.DataSource_InlineString{InlineString: format},
					}},
				}},
			}},
		})},
	}
}

// sniForwardFilter resolves the SNI and connects to port. Chains to the
// same port share one (they only read it).
func (b *builder) sniForwardFilter(port uint32) *listenerv3.Filter {
	if f, ok := b.sniFilters[port]; ok {
		return f
	}
	f := sniForwardFilter(b.o, port)
	b.sniFilters[port] = f
	return f
}

func sniForwardFilter(o Options, port uint32) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: "envoy.filters.network.sni_dynamic_forward_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&snidfpv3.FilterConfig{
			DnsCacheConfig: dnsCache(o),
			PortSpecifier:  &snidfpv3.FilterConfig_PortValue{PortValue: port},
		})},
	}
}

// tunneling sends a chained cluster's connections (its endpoint is the
// upstream proxy, see chained) in a CONNECT to hostname.
func tunneling(hostname string, up *UpstreamProxy) *tcpproxyv3.TcpProxy_TunnelingConfig {
	t := &tcpproxyv3.TcpProxy_TunnelingConfig{Hostname: hostname}
	if up.Authorization != "" {
		t.HeadersToAdd = []*corev3.HeaderValueOption{proxyAuthorization(up)}
	}
	return t
}

// tcpProxyFilter proxies to cluster (the one the filter state names, when
// a filter before it set one). With onDemand, a cluster Envoy does not
// hold yet is asked for there (see ondemand.go); a connection to a name
// that is no cluster is closed as without one. With tunnel, the bytes go
// in a CONNECT to the cluster (an upstream proxy).
func tcpProxyFilter(statPrefix, cluster string, logs []*accesslogv3.AccessLog, onDemand *corev3.ConfigSource, tunnel *tcpproxyv3.TcpProxy_TunnelingConfig) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		AccessLog:        logs,
		TunnelingConfig:  tunnel,
	}
	if onDemand != nil {
		tp.OnDemand = &tcpproxyv3.TcpProxy_OnDemand{OdcdsConfig: onDemand, Timeout: durationpb.New(onDemandTimeout)}
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	}
}
