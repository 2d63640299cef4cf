package xds

import (
	"fmt"
	"net/netip"
	"sort"
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

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// A gateway carries many tenants' traffic; Envoy's default circuit-breaker
// thresholds (1024) are sized for one service, not for a gateway.
const circuitBreakerLimit = 65536

// hostCluster builds the cluster for one exact host and service port.
func (t *translator) hostCluster(host string, hp serviceentry.HostPort) *clusterv3.Cluster {
	return t.memoized("host", host, hp, func() *clusterv3.Cluster { return t.buildHostCluster(host, hp) })
}

func (t *translator) buildHostCluster(host string, hp serviceentry.HostPort) *clusterv3.Cluster {
	o := t.o
	e := hp.Entry
	c := baseCluster(o, vocab.ClusterName(host, hp.Number))
	if hp.Protocol.UpstreamHTTP2() {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	var endpoints []*endpointv3.LbEndpoint
	switch e.Resolution {
	case serviceentry.ResolutionStatic:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		for _, ep := range e.Endpoints {
			port := ep.PortFor(hp.Port)
			if t.selfSocket(ep.Address, port) {
				t.warnf("ServiceEntry %s: endpoint %s:%d is one of the gateway's own listeners; it is left out of %s (a forwarding loop)", e.Ref, ep.Address, port, c.Name)
				continue
			}
			endpoints = append(endpoints, lbEndpoint(ep.Address, port, ep.Weight))
		}
	case serviceentry.ResolutionDNSRoundRobin:
		// LOGICAL_DNS: one address at a time, re-resolved for new
		// connections; Envoy allows exactly one endpoint here. Names are
		// absolute, so the gateway resolver is asked (see absolute).
		c.ClusterDiscoveryType = t.dnsCluster(true)
		if len(e.Endpoints) > 0 {
			endpoints = append(endpoints, lbEndpoint(absolute(e.Endpoints[0].Address), e.Endpoints[0].PortFor(hp.Port), 0))
		} else {
			endpoints = append(endpoints, lbEndpoint(absolute(host), hp.UpstreamPort(), 0))
		}
	default:
		// DNS, and NONE for TCP entries without addresses (the gateway has
		// no original destination to pass through to, so it resolves the
		// host): STRICT_DNS keeps every resolved address in the pool.
		c.ClusterDiscoveryType = t.dnsCluster(false)
		if len(e.Endpoints) > 0 {
			for _, ep := range e.Endpoints {
				endpoints = append(endpoints, lbEndpoint(absolute(ep.Address), ep.PortFor(hp.Port), ep.Weight))
			}
		} else {
			endpoints = append(endpoints, lbEndpoint(absolute(host), hp.UpstreamPort(), 0))
		}
	}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: c.Name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: endpoints}},
	}
	if originates(hp) {
		originate(o, c, hp)
	}
	// Hosts routed by SNI or Host share one filter chain or route: their
	// access logs read the entry's name from here (clusterEntryField).
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{routeMetadataKey: {Fields: map[string]*structpb.Value{
		"serviceentry": structpb.NewStringValue(e.Ref.String()),
	}}}}
	return c
}

// passthroughCluster is hostCluster under PassthroughClusterName: the
// upstream of a TLS host the gateway passes through.
func (t *translator) passthroughCluster(hp hostPort) *clusterv3.Cluster {
	return t.memoized("tls", hp.host.Name, hp.hp, func() *clusterv3.Cluster {
		c := t.buildHostCluster(hp.host.Name, hp.hp)
		c.Name = vocab.PassthroughClusterName(hp.host.Name, hp.hp.Number)
		c.LoadAssignment.ClusterName = c.Name
		return c
	})
}

// clusterEntryField is the file access log's value of the upstream
// cluster's ServiceEntry (every host cluster's metadata).
var clusterEntryField = fmt.Sprintf("%%CLUSTER_METADATA(%s:serviceentry)%%", routeMetadataKey)

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
func (t *translator) dnsCluster(logical bool) *clusterv3.Cluster_ClusterType {
	if ct := t.dnsTypes[logical]; ct != nil {
		return ct
	}
	ct := &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
		Name: "envoy.clusters.dns",
		TypedConfig: mustAny(&dnsclusterv3.DnsCluster{
			DnsLookupFamily:              dnscommonv3.DnsLookupFamily_V4_PREFERRED,
			TypedDnsResolverConfig:       dnsResolver(t.o),
			AllAddressesInSingleEndpoint: logical,
			RespectDnsTtl:                true,
			DnsRefreshRate:               durationpb.New(dnsRefresh),
			DnsFailureRefreshRate: &dnsclusterv3.DnsCluster_RefreshRate{
				BaseInterval: durationpb.New(dnsFailureBase),
				MaxInterval:  durationpb.New(dnsFailureMax),
			},
		}),
	}}
	t.dnsTypes[logical] = ct
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

func blackholeCluster(o Options) *clusterv3.Cluster {
	c := baseCluster(o, BlackholeCluster)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: BlackholeCluster}
	return c
}

func originalDstCluster(o Options) *clusterv3.Cluster {
	c := baseCluster(o, OriginalDstCluster)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
	c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	return c
}

// sortClusters orders clusters by name for deterministic output.
func sortClusters(cs []*clusterv3.Cluster) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
}
