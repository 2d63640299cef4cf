package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	luaspecifierv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/router/cluster_specifiers/lua/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// routeTable is a port's HTTP route configuration: one virtual host per
// model virtual host, each with its one route.
func (b *builder) routeTable(r *gateway.Routes) *routev3.RouteConfiguration {
	return reuse(b, memoRoute, r.Name, r, func() *routev3.RouteConfiguration {
		rc := &routev3.RouteConfiguration{Name: r.Name, ValidateClusters: wrapperspb.Bool(false)}
		for _, vh := range r.VirtualHosts {
			rc.VirtualHosts = append(rc.VirtualHosts, b.virtualHost(r.Port, vh))
		}
		return rc
	})
}

func (b *builder) virtualHost(port uint32, vh *gateway.VirtualHost) *routev3.VirtualHost {
	route := &routev3.Route{
		Name:     vh.Route,
		Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Metadata: routeMetadata(vh.Verdict, vh.Reason, vh.ServiceEntry),
	}
	switch vh.Kind {
	case gateway.VHostBlocked:
		body := fmt.Sprintf("egressd: DestinationRule %s asks for TLS to %s on port %d, which the gateway cannot originate: %s\n",
			vh.Blocked.Rule, vh.Host, port, vh.Blocked.Unsupported)
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 502,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		}}
		route.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-egressd-denied", Value: string(vh.Reason)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	case gateway.VHostByHost:
		return b.byHostVirtualHost(port, vh, route)
	default:
		action := &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: vh.Cluster},
			// Streams and long polls are legitimate egress; idle timeouts
			// bound them instead.
			Timeout: durationpb.New(vh.Timeout),
		}
		if r := vh.Retries; r != nil {
			retryOn := r.RetryOn
			if retryOn == "" {
				retryOn = serviceentry.DefaultRetryOn
			}
			action.RetryPolicy = &routev3.RetryPolicy{RetryOn: retryOn, NumRetries: wrapperspb.UInt32(r.Attempts)}
			if r.PerTryTimeout > 0 {
				action.RetryPolicy.PerTryTimeout = durationpb.New(r.PerTryTimeout)
			}
		}
		route.Action = &routev3.Route_Route{Route: action}
	}
	switch vh.Guard {
	case gateway.GuardOff:
		route.TypedPerFilterConfig = guardOff(vh)
	case gateway.GuardListed:
		route.TypedPerFilterConfig = guardPerRoute(b.o, vh.GuardAllows)
	}
	return &routev3.VirtualHost{Name: vh.Name, Domains: vh.Domains, Routes: []*routev3.Route{route}}
}

// guardOff is the per-route config that turns the address guard off, for
// a virtual host whose routes resolve nothing (nil unless it says so).
func guardOff(vh *gateway.VirtualHost) map[string]*anyType {
	if vh.Guard != gateway.GuardOff {
		return nil
	}
	return guardOffConfig()
}

// guardOffConfig turns the address guard off on one route.
func guardOffConfig() map[string]*anyType {
	return map[string]*anyType{guardFilterName: mustAny(&rbachttpv3.RBACPerRoute{})}
}

// byHostVirtualHost finds the cluster the Host names on port,
// vocab.ClusterName(Host, port), for every request no other virtual host
// claims. A Host that is a lower-case name, as clients send it, takes
// Envoy's own path: the connection manager's early header mutation has put
// that cluster's name in clusterHeader before routing (overwriting
// whatever the client sent), and the route reads it (cluster_header) and
// removes it before forwarding. Only ports and lower-case names are let
// in there, so the name is always one of this port's HTTP host clusters.
// Any other Host (upper case, with a port) goes to the Lua cluster
// specifier, which normalises it first. A Host with no cluster is answered
// 403 (notInRegistryReply) either way.
func (b *builder) byHostVirtualHost(port uint32, vh *gateway.VirtualHost, template *routev3.Route) *routev3.VirtualHost {
	native := proto.Clone(template).(*routev3.Route)
	native.Match.Headers = []*routev3.HeaderMatcher{{
		Name: ":authority",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: lowerCaseName}},
		}},
	}}
	native.Action = &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: clusterHeader},
		Timeout:          durationpb.New(0),
	}}
	native.RequestHeadersToRemove = []string{clusterHeader}
	template.Action = &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_InlineClusterSpecifierPlugin{InlineClusterSpecifierPlugin: byHostClusterSpecifier(port)},
		Timeout:          durationpb.New(0),
	}}
	routes := []*routev3.Route{native, template}
	if off := guardOff(vh); off != nil {
		for _, r := range routes {
			r.TypedPerFilterConfig = off
		}
	}
	return &routev3.VirtualHost{Name: vh.Name, Domains: vh.Domains, Routes: routes}
}

// clusterHeader carries the cluster a request's Host names from the early
// header mutation to the by-Host route (see byHostVirtualHost).
const clusterHeader = "x-egressd-cluster"

// lowerCaseName matches a Host that is a lower-case DNS name, without a
// port or a trailing dot.
const lowerCaseName = `^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`

// byHostEarlyMutation is the connection manager's early header mutation
// of a port that routes by Host: clusterHeader set to the cluster the Host
// names, before the route is chosen.
func byHostEarlyMutation(port uint32) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{
		Name: "envoy.http.early_header_mutation.header_mutation",
		TypedConfig: mustAny(&earlymutationv3.HeaderMutation{Mutations: []*mutationv3.HeaderMutation{{
			Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: clusterHeader, Value: vocab.ClusterName("", port) + "%REQ(:AUTHORITY)%"},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}}}),
	}
}

// byHostClusterSpecifier picks the cluster the Host names,
// vocab.ClusterName(Host, port), per request with a small Lua script. The
// Host is lower-cased and may carry the service port. A listed host's
// cluster exists and the request goes to it; for any other Host there is
// no such cluster and the local reply of the HCM (notInRegistryReply)
// answers 403.
func byHostClusterSpecifier(port uint32) *routev3.ClusterSpecifierPlugin {
	lua := fmt.Sprintf(`function envoy_on_route(route_handle)
  local host = string.lower(route_handle:headers():get(":authority") or "")
  local p = string.match(host, ":(%%d+)$")
  if p ~= nil then
    if p ~= "%d" then return "" end
    host = string.sub(host, 1, #host - #p - 1)
  end
  return %q .. host
end
`, port, vocab.ClusterName("", port))
	return &routev3.ClusterSpecifierPlugin{Extension: &corev3.TypedExtensionConfig{
		Name: "envoy.router.cluster_specifier_plugin.lua",
		TypedConfig: mustAny(&luaspecifierv3.LuaConfig{
			SourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: lua}},
			// A script error denies too: no such cluster.
			DefaultCluster: vocab.ClusterName("", port),
		}),
	}}
}

// notInRegistryReply answers 403 for a request whose Host names no
// cluster on a port that routes by Host, as an unlisted host is under
// REGISTRY_ONLY.
func notInRegistryReply(port uint32) *hcmv3.ResponseMapper {
	body := fmt.Sprintf("egressd: host %%REQ(:AUTHORITY)%% is not in the egress registry (outbound policy %s): no ServiceEntry allows it on port %d\n",
		serviceentry.RegistryOnly, port)
	nc := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NC"}},
	}}
	return denialReply(nc, vocab.ReasonNotInRegistry, body)
}

// absentReply answers 403 for a request routed to an absent cluster
// (on-demand discovery's answer for a name that is no cluster; Envoy
// itself says no healthy upstream), as an unlisted host is answered.
func absentReply(port uint32) *hcmv3.ResponseMapper {
	filter := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
		Filters: []*accesslogv3.AccessLogFilter{
			{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"UH"}}}},
			celFilter(absentExpr),
		},
	}}}
	m := notInRegistryReply(port)
	m.Filter = filter
	return m
}

// denialReply turns the local replies filter matches into a 403 whose
// body (a format string) and x-egressd-denied header say why.
func denialReply(filter *accesslogv3.AccessLogFilter, reason vocab.Reason, body string) *hcmv3.ResponseMapper {
	return &hcmv3.ResponseMapper{
		Filter:     filter,
		StatusCode: wrapperspb.UInt32(403),
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}},
			ContentType: "text/plain; charset=utf-8",
		},
		HeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-egressd-denied", Value: string(reason)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}

// routeMetadata carries a route's verdict, reason and ServiceEntry into
// its access log lines.
func routeMetadata(verdict vocab.Verdict, reason vocab.Reason, serviceEntry string) *corev3.Metadata {
	fields := map[string]*structpb.Value{
		"verdict": structpb.NewStringValue(string(verdict)),
		"reason":  structpb.NewStringValue(string(reason)),
	}
	if serviceEntry != "" {
		fields["serviceentry"] = structpb.NewStringValue(serviceEntry)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{routeMetadataKey: {Fields: fields}}}
}
