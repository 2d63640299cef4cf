package xds

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	dnscommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/common/dns/v3"
	dnsclusterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dns/v3"
	dfpclusterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/dynamic_forward_proxy/v3"
	dfpcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/dynamic_forward_proxy/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// A gateway carries many tenants' traffic; Envoy's default circuit-breaker
// thresholds (1024) are sized for one service, not for a gateway.
const circuitBreakerLimit = 65536

// cluster builds one cluster of the model.
func (b *builder) cluster(m *gateway.Cluster) *clusterv3.Cluster {
	return reuse(b, memoCluster, m.Name, m, func() *clusterv3.Cluster {
		switch m.Kind {
		case gateway.ClusterDynamic:
			return dynamicCluster(b.o, m.Name, m.HTTP2)
		case gateway.ClusterOriginalDst:
			return originalDstCluster(b.o)
		case gateway.ClusterBlackhole:
			return blackholeCluster(b.o, m.Name)
		}
		return b.hostCluster(m)
	})
}

// chained reports whether the cluster named name goes through the
// upstream proxy when there is one: a TLS passthrough host's.
func chained(name string) bool {
	n, ok := vocab.ParseCluster(name)
	return ok && n.Passthrough
}

// hostCluster is the cluster of one host on one port: STATIC, or a DNS
// cluster (its names absolute, so the gateway resolver is asked, see
// guard.go), with TLS origination when the model says so.
func (b *builder) hostCluster(m *gateway.Cluster) *clusterv3.Cluster {
	c := baseCluster(b.o, m.Name)
	if m.HTTP2 {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	switch m.Kind {
	case gateway.ClusterStatic:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	case gateway.ClusterLogicalDNS:
		// One address at a time, re-resolved for new connections.
		c.ClusterDiscoveryType = b.dnsCluster(true)
	default:
		// Every resolved address in the pool.
		c.ClusterDiscoveryType = b.dnsCluster(false)
	}
	endpoints := make([]*endpointv3.LbEndpoint, 0, len(m.Endpoints))
	for _, ep := range m.Endpoints {
		endpoints = append(endpoints, lbEndpoint(ep.Address, ep.Port, ep.Weight))
	}
	if up := b.o.UpstreamProxy; up != nil && chained(m.Name) {
		// Chained: the cluster's one endpoint is the upstream proxy; the
		// chain's tcp_proxy sends it CONNECT host:port (tunnelingConfig).
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		endpoints = []*endpointv3.LbEndpoint{lbEndpoint(up.Address.Addr().String(), uint32(up.Address.Port()), 0)}
	}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: c.Name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: endpoints}},
	}
	if m.TLS != nil {
		originate(c, m.TLS)
	}
	if m.ServiceEntry != "" {
		// Hosts routed by SNI or Host share one filter chain or route:
		// their access logs read the entry's name from here
		// (clusterEntryField).
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{routeMetadataKey: {Fields: map[string]*structpb.Value{
			"serviceentry": structpb.NewStringValue(m.ServiceEntry),
		}}}}
	}
	return c
}

// clusterEntryField is the file access log's value of the upstream
// cluster's ServiceEntry (every host cluster's metadata).
var clusterEntryField = clusterMetadataField(routeMetadataKey, "serviceentry")

func baseCluster(o Options, name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(o.ConnectTimeout),
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections:     wrapperspb.UInt32(circuitBreakerLimit),
			MaxPendingRequests: wrapperspb.UInt32(circuitBreakerLimit),
			MaxRequests:        wrapperspb.UInt32(circuitBreakerLimit),
		}}},
	}
}

func lbEndpoint(address string, port, weight uint32) *endpointv3.LbEndpoint {
	ep := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: socketAddress(address, port),
	}}}
	if weight > 0 {
		ep.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return ep
}

func socketAddress(address string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func http2Options() map[string]*anyType {
	return map[string]*anyType{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
}

// dnsCluster is the discovery type of a DNS cluster (Envoy's
// envoy.clusters.dns extension): logical (one address at a time,
// LOGICAL_DNS) or strict (every address, STRICT_DNS). It re-resolves when
// the records expire rather than every 5 s, and backs off while a name
// does not resolve: with thousands of hosts Envoy's defaults would keep
// its main thread and the resolvers busy. Both variants are built once per
// translation and shared by every DNS cluster (they are only read).
func (b *builder) dnsCluster(logical bool) *clusterv3.Cluster_ClusterType {
	if ct := b.dnsTypes[logical]; ct != nil {
		return ct
	}
	ct := &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
		Name: "envoy.clusters.dns",
		TypedConfig: mustAny(&dnsclusterv3.DnsCluster{
			DnsLookupFamily:              dnscommonv3.DnsLookupFamily_V4_PREFERRED,
			TypedDnsResolverConfig:       dnsResolver(b.o),
			AllAddressesInSingleEndpoint: logical,
			RespectDnsTtl:                true,
			DnsRefreshRate:               durationpb.New(dnsRefresh),
			DnsFailureRefreshRate: &dnsclusterv3.DnsCluster_RefreshRate{
				BaseInterval: durationpb.New(dnsFailureBase),
				MaxInterval:  durationpb.New(dnsFailureMax),
			},
		}),
	}}
	b.dnsTypes[logical] = ct
	return ct
}

// DNS refresh of host clusters: the records' TTL (at least Envoy's 5 s
// minimum), dnsRefresh when the TTL is 0; failures retry from
// dnsFailureBase, backing off to dnsFailureMax.
const (
	dnsRefresh     = 30 * time.Second
	dnsFailureBase = 2 * time.Second
	dnsFailureMax  = 60 * time.Second
)

// dnsResolver is Envoy's c-ares resolver, pointed at o.DNSResolvers when
// set (nil means the system's resolv.conf).
func dnsResolver(o Options) *corev3.TypedExtensionConfig {
	if len(o.DNSResolvers) == 0 {
		return nil
	}
	// No search domains: a name is asked as it is, never as
	// "<name>.<search domain>" (names are written absolute anyway).
	cfg := &caresv3.CaresDnsResolverConfig{DnsResolverOptions: &corev3.DnsResolverOptions{NoDefaultSearchDomain: true}}
	for _, r := range o.DNSResolvers {
		ap := netip.MustParseAddrPort(r) // checked by Options.withDefaults
		cfg.Resolvers = append(cfg.Resolvers, socketAddress(ap.Addr().String(), uint32(ap.Port())))
	}
	return &corev3.TypedExtensionConfig{Name: "envoy.network.dns_resolver.cares", TypedConfig: mustAny(cfg)}
}

// dnsCache is the one DNS cache the dynamic forward proxy filters and
// clusters share; every user must carry an identical copy.
func dnsCache(o Options) *dfpcommonv3.DnsCacheConfig {
	return &dfpcommonv3.DnsCacheConfig{
		Name:                   DNSCacheName,
		DnsLookupFamily:        clusterv3.Cluster_V4_PREFERRED,
		MaxHosts:               wrapperspb.UInt32(8192),
		HostTtl:                durationpb.New(300e9),
		TypedDnsResolverConfig: dnsResolver(o),
	}
}

// dynamicCluster resolves its destination per request or connection from
// the Host header or SNI the filters put in place.
func dynamicCluster(o Options, name string, http2 bool) *clusterv3.Cluster {
	c := baseCluster(o, name)
	c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	c.ClusterDiscoveryType = &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
		Name:        "envoy.clusters.dynamic_forward_proxy",
		TypedConfig: mustAny(&dfpclusterv3.ClusterConfig{ClusterImplementationSpecifier: &dfpclusterv3.ClusterConfig_DnsCacheConfig{DnsCacheConfig: dnsCache(o)}}),
	}}
	if http2 {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	return c
}

func blackholeCluster(o Options, name string) *clusterv3.Cluster {
	c := baseCluster(o, name)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: name}
	return c
}

// absentMetadata is the filter_metadata namespace that marks an absent
// cluster (see ondemand.go): the local reply, the access log filters and
// the decision intake (TagAbsent) tell a name that is no cluster by it.
const absentMetadata = "egressd_absent"

// absentCluster is what on-demand discovery answers for a name that is no
// cluster of the configuration: no endpoints, so a request or connection
// routed to it fails at once, and marked absentMetadata, so it is denied
// as not in the registry.
func absentCluster(o Options, name string) *clusterv3.Cluster {
	c := blackholeCluster(o, name)
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{absentMetadata: {Fields: map[string]*structpb.Value{
		"absent": structpb.NewStringValue("true"),
	}}}}
	return c
}

func originalDstCluster(o Options) *clusterv3.Cluster {
	c := baseCluster(o, OriginalDstCluster)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
	c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	return c
}
