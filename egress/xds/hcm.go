package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dfphttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	ondemandv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/on_demand/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

// httpConnectionManager builds every HTTP connection manager of the
// gateway, the plaintext chain of a port and the mesh listener's chain for
// it alike; port is the service port (the logs say it), policies the mesh
// listener's AuthorizationPolicies (nil elsewhere). The order of its HTTP
// filters is decided here, once:
//
//  1. header_mutation strips what would tell an external host about the
//     caller or the gateway (stripHeadersFilter);
//  2. the AuthorizationPolicy RBAC filters (mesh listener), or on a
//     plaintext port the source scope's (Options.SourceScope), so a
//     refused caller costs no DNS lookup;
//  3. the dynamic forward proxy, when the port's routes forward
//     dynamically: it resolves the Host and saves the address;
//  4. the address guard on that address (guardHTTPFilter);
//  5. on_demand, with on-demand clusters (Options.ODCDSCluster): it asks
//     the control plane for the route's cluster if Envoy does not hold it
//     yet, and holds the request until the answer (a name that is no
//     cluster is answered at once: the request is then denied as no
//     cluster, like an unlisted Host);
//  6. the router, which adds no x-envoy-* headers.
//
// Nothing about the caller is added: no X-Forwarded-For (the client's
// own is stripped), no request id.
func (b *builder) httpConnectionManager(h *gateway.HTTP, port uint32, policies []*serviceentry.AuthorizationPolicy) *hcmv3.HttpConnectionManager {
	filters := []*hcmv3.HttpFilter{stripHeadersFilter()}
	if h.Mesh {
		filters = append(filters, authz.HTTPFilters(policies)...)
	} else if b.o.SourceScope {
		filters = append(filters, sourceScopeHTTPFilter(port))
	}
	if h.Dynamic {
		filters = append(filters, dynamicForwardHTTPFilter(b.o), guardHTTPFilter(b.o, nil))
	}
	if b.o.ODCDSCluster != "" {
		filters = append(filters, b.onDemandHTTPFilter())
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{SuppressEnvoyHeaders: true})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: h.StatPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: h.Routes,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters:       filters,
		AccessLog:         httpAccessLog(b.o, port, h.Mesh, h.ByHost, false),
		UseRemoteAddress:  wrapperspb.Bool(true),
		SkipXffAppend:     true,
		GenerateRequestId: wrapperspb.Bool(false),
	}
	var replies []*hcmv3.ResponseMapper
	if b.o.ODCDSCluster != "" {
		replies = append(replies, absentReply(port))
	}
	if h.ByHost {
		hcm.EarlyHeaderMutationExtensions = []*corev3.TypedExtensionConfig{byHostEarlyMutation(port)}
		replies = append(replies, notInRegistryReply(port))
	}
	if h.Dynamic {
		replies = append(replies, guardReplies(port)...)
	}
	if len(replies) > 0 {
		hcm.LocalReplyConfig = &hcmv3.LocalReplyConfig{Mappers: replies}
	}
	return hcm
}

// dynamicForwardHTTPFilter resolves the Host of requests routed to the
// dynamic forward proxy clusters, and saves the address for the guard
// after it (guardHTTPFilter).
func dynamicForwardHTTPFilter(o Options) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name: "envoy.filters.http.dynamic_forward_proxy",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&dfphttpv3.FilterConfig{
			ImplementationSpecifier: &dfphttpv3.FilterConfig_DnsCacheConfig{DnsCacheConfig: dnsCache(o)},
			SaveUpstreamAddress:     true,
		})},
	}
}

// onDemandHTTPFilter discovers the route's cluster on demand; built once
// per translation, shared by every connection manager.
func (b *builder) onDemandHTTPFilter() *hcmv3.HttpFilter {
	if b.odHTTP == nil {
		b.odHTTP = &hcmv3.HttpFilter{
			Name: "envoy.filters.http.on_demand",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&ondemandv3.OnDemand{Odcds: &ondemandv3.OnDemandCds{
				Source:  onDemandSource(b.o.ODCDSCluster),
				Timeout: durationpb.New(onDemandTimeout),
			}})},
		}
	}
	return b.odHTTP
}
