package xds

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// httpManager describes one HTTP connection manager of the gateway: the
// plaintext chain of a port, or the mesh listener's chain for that port.
// Both serve the port's one route table.
type httpManager struct {
	port       uint32 // service port: the route table and the logs
	statPrefix string
	mesh       bool // on the mesh listener (access logs say so)
	// authz are the AuthorizationPolicy RBAC filters (mesh listener).
	authz []*hcmv3.HttpFilter
}

// httpConnectionManager builds every HTTP connection manager of the
// gateway. The order of its HTTP filters is decided here, once:
//
//  1. header_mutation strips what would tell an external host about the
//     caller or the gateway (stripHeadersFilter);
//  2. the AuthorizationPolicy RBAC filters (mesh listener), so a refused
//     caller costs no DNS lookup;
//  3. the dynamic forward proxy, when the port's routes forward
//     dynamically: it resolves the Host and saves the address;
//  4. the address guard on that address (guardHTTPFilter);
//  5. the router, which adds no x-envoy-* headers.
//
// Nothing about the caller is added: no X-Forwarded-For (the client's
// own is stripped), no request id.
func (t *translator) httpConnectionManager(m httpManager) *hcmv3.HttpConnectionManager {
	filters := []*hcmv3.HttpFilter{stripHeadersFilter()}
	filters = append(filters, m.authz...)
	dynamic := t.needsDynamicHTTP(m.port)
	if dynamic {
		filters = append(filters, dynamicForwardHTTPFilter(t.o), guardHTTPFilter(t.o, nil))
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{SuppressEnvoyHeaders: true})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: m.statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: vocab.RouteName(m.port),
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters:       filters,
		AccessLog:         httpAccessLog(t.o, m.port, m.mesh, t.byHostPorts[m.port]),
		UseRemoteAddress:  wrapperspb.Bool(true),
		SkipXffAppend:     true,
		GenerateRequestId: wrapperspb.Bool(false),
	}
	t.routeByHost(hcm, m.port)
	if dynamic {
		guardLocalReplies(hcm, m.port)
	}
	return hcm
}

// httpChainStatPrefix names the plaintext HCM of a port.
func httpChainStatPrefix(port uint32) string { return fmt.Sprintf("egress_http_%d", port) }
