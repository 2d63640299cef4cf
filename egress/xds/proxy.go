package xds

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// The explicit proxy (gateway.Proxy): one listener whose connection
// manager takes CONNECT (a tunnel to a listed host port's cluster) and
// absolute-URI requests (routed by their host as on port 80), with the
// same filters, replies and logs as the HTTP ports. Its access log entries
// carry TagVia "proxy".

// ProxyListenerName is the proxy listener's name.
const ProxyListenerName = "proxy"

// TagVia is the access log tag that says a request came through the
// explicit proxy (value ViaProxy).
const (
	TagVia   = "egressd.via"
	ViaProxy = "proxy"
)

// proxyListener is the proxy's listener: plaintext, one HTTP chain.
func (b *builder) proxyListener(px *gateway.Proxy) *listenerv3.Listener {
	return reuse(b, memoListener, ProxyListenerName, px, func() *listenerv3.Listener {
		h := &gateway.HTTP{Routes: px.Routes, StatPrefix: gateway.ProxyStatPrefix(px.Number)}
		if px.HTTP != nil {
			h.Dynamic, h.ByHost = px.HTTP.Dynamic, px.HTTP.ByHost
		}
		hcm := b.httpConnectionManager(h, 80, nil)
		// Port 80's source scope names port 80's hosts: a CONNECT to
		// another port would be judged by them. Proxy clients are named
		// by their Proxy-Authorization instead.
		hcm.HttpFilters = slices.DeleteFunc(hcm.HttpFilters, func(f *hcmv3.HttpFilter) bool { return f.Name == SourceScopeName(80, true) })
		hcm.AccessLog = httpAccessLog(b.o, 80, false, h.ByHost, true)
		// CONNECT is an upgrade the manager must be told to take, over
		// HTTP/1.1 and HTTP/2 alike.
		hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}}
		hcm.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{AllowConnect: true}
		if f := proxyIdentityFilter(b.o.ProxyIdentities, b.o.ProxyRequireIdentity); f != nil {
			// First: the strip filter after it removes Proxy-Authorization.
			hcm.HttpFilters = append([]*hcmv3.HttpFilter{f}, hcm.HttpFilters...)
		}
		mappers := []*hcmv3.ResponseMapper{connectNotListedReply()}
		if b.o.ProxyRequireIdentity {
			mappers = append([]*hcmv3.ResponseMapper{proxyAuthRequiredReply()}, mappers...)
		}
		if hcm.LocalReplyConfig != nil {
			mappers = append(mappers, hcm.LocalReplyConfig.Mappers...)
		}
		hcm.LocalReplyConfig = &hcmv3.LocalReplyConfig{Mappers: mappers}
		return &listenerv3.Listener{
			Name:                          ProxyListenerName,
			Address:                       socketAddress(b.o.ListenAddress, px.Listen),
			PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
			FilterChains: []*listenerv3.FilterChain{{
				Name: "proxy",
				Filters: []*listenerv3.Filter{{
					Name:       "envoy.filters.network.http_connection_manager",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
				}},
			}},
		}
	})
}

// proxyRoutes is the proxy's route table: port 80's virtual hosts (built
// for the port: base, nil without one) for absolute URIs, one virtual host
// per CONNECT target, and the catch-all, where a CONNECT to anything else
// is answered 403 not_in_registry before port 80's catch-all route.
func (b *builder) proxyRoutes(px *gateway.Proxy, base *routev3.RouteConfiguration) *routev3.RouteConfiguration {
	return reuse(b, memoRoute, px.Routes, px, func() *routev3.RouteConfiguration {
		rc := &routev3.RouteConfiguration{Name: px.Routes, ValidateClusters: wrapperspb.Bool(false)}
		var catchAll *routev3.VirtualHost
		if n := len(base.GetVirtualHosts()); n > 0 {
			rc.VirtualHosts = slices.Clone(base.VirtualHosts[:n-1])
			catchAll = base.VirtualHosts[n-1]
		}
		dynamic := px.HTTP != nil && px.HTTP.Dynamic
		for _, t := range px.Connect {
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    "connect:" + t.Authority,
				Domains: []string{t.Authority},
				Routes:  []*routev3.Route{b.connectRoute(t.Cluster, dynamic)},
			})
		}
		refuse := &routev3.Route{
			Name:     "connect_not_listed",
			Match:    connectMatch(),
			Metadata: routeMetadata(vocab.VerdictDeny, vocab.ReasonNotInRegistry, ""),
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 403,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "egressd: CONNECT target is not in the egress registry: no ServiceEntry lists this host on this port\n"}},
			}},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "x-egressd-denied", Value: string(vocab.ReasonNotInRegistry)},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}
		if dynamic {
			refuse.TypedPerFilterConfig = guardOffConfig()
		}
		last := &routev3.VirtualHost{Name: "proxy_catch_all", Domains: []string{"*"}, Routes: []*routev3.Route{refuse}}
		if catchAll != nil {
			last.Name = catchAll.Name
			last.Routes = append(last.Routes, catchAll.Routes...)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, last)
		return rc
	})
}

// connectMatch matches CONNECT requests (and only those).
func connectMatch() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}
}

// connectRoute terminates a CONNECT and tunnels its bytes to cluster. The
// address guard (with dynamic routes in the table) has nothing to check:
// the cluster's endpoints are the entry's, resolved by the guarded
// resolver.
//
// A chained cluster (Options.UpstreamProxy) is the upstream proxy itself:
// the CONNECT is forwarded to it, with the proxy's credentials, rather
// than terminated.
func (b *builder) connectRoute(cluster string, dynamic bool) *routev3.Route {
	r := &routev3.Route{
		Name:     "connect",
		Match:    connectMatch(),
		Metadata: routeMetadata(vocab.VerdictAllow, vocab.ReasonAllowed, ""),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			// A tunnel lives as long as its connection; idle timeouts
			// bound it.
			Timeout: durationpb.New(0),
			UpgradeConfigs: []*routev3.RouteAction_UpgradeConfig{{
				UpgradeType:   "CONNECT",
				ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{},
			}},
		}},
	}
	if up := b.o.UpstreamProxy; up != nil && chained(cluster) {
		r.GetRoute().UpgradeConfigs[0].ConnectConfig = nil
		if up.Authorization != "" {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{proxyAuthorization(up)}
		}
	}
	if dynamic {
		r.TypedPerFilterConfig = guardOffConfig()
	}
	return r
}

// proxyAuthorization is the upstream proxy's credentials header.
func proxyAuthorization(up *UpstreamProxy) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "proxy-authorization", Value: up.Authorization},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// connectNotListedReply keeps the body of a CONNECT refused because its
// target's cluster does not exist (on-demand discovery's answer) about the
// CONNECT, not port 80.
func connectNotListedReply() *hcmv3.ResponseMapper {
	absent := orFilter(
		&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NC"}}}},
		celFilter(absentExpr))
	body := fmt.Sprintf("egressd: CONNECT %%REQ(:AUTHORITY)%% is not in the egress registry (outbound policy %s): no ServiceEntry lists this host on this port\n", serviceentry.RegistryOnly)
	return denialReply(andFilter(connectFilter(false), absent), vocab.ReasonNotInRegistry, body)
}

// ProxyIdentity is one client of the explicit proxy outside the mesh: it
// names itself with Proxy-Authorization, "Basic" with Identity and Secret
// as user and password (curl --proxy-user identity:secret), or "Bearer"
// with Secret; decisions then carry Identity.
type ProxyIdentity struct {
	Identity string
	Secret   string
}

// ProxyIdentityPrefix marks the proxy identity filter's shadow results in
// the request's dynamic metadata (RBAC puts its shadow stat prefix before
// the keys): "<prefix>shadow_effective_policy_id" is
// proxyIdentityPolicy + the identity of the client that matched.
const (
	ProxyIdentityPrefix = "proxy_identity_"
	proxyIdentityPolicy = "proxy-identity/"
)

// ProxyIdentityOf returns the identity the proxy identity filter found in
// a request's filter metadata (ok false: none).
func ProxyIdentityOf(filterMetadata map[string]*structpb.Struct) (identity string, ok bool) {
	f := filterMetadata[authz.HTTPFilterName].GetFields()
	if f[ProxyIdentityPrefix+"shadow_engine_result"].GetStringValue() != "allowed" {
		return "", false
	}
	id, found := strings.CutPrefix(f[ProxyIdentityPrefix+"shadow_effective_policy_id"].GetStringValue(), proxyIdentityPolicy)
	return id, found && id != ""
}

// ProxyIdentityRequired is the response code details of a request the
// proxy refused for want of an identity (Options.ProxyRequireIdentity).
const ProxyIdentityRequired = "rbac_access_denied_matched_policy[none]"

// proxyIdentityFilter names the client by its Proxy-Authorization (shadow
// ALLOW rules, one policy per identity, whose match is recorded in the
// metadata), and with require refuses a request that names none. nil
// without identities unless require.
func proxyIdentityFilter(ids []ProxyIdentity, require bool) *hcmv3.HttpFilter {
	if len(ids) == 0 && !require {
		return nil
	}
	rules := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
	header := func(v string) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: &routev3.HeaderMatcher{
			Name: "proxy-authorization",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v},
			}},
		}}}
	}
	for _, id := range ids {
		basic := base64.StdEncoding.EncodeToString([]byte(id.Identity + ":" + id.Secret))
		rules.Policies[proxyIdentityPolicy+id.Identity] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
				header("Basic " + basic), header("Bearer " + id.Secret),
			}}}}},
		}
	}
	cfg := &rbachttpv3.RBAC{ShadowRules: rules, ShadowRulesStatPrefix: ProxyIdentityPrefix}
	if require {
		cfg.Rules, cfg.RulesStatPrefix = rules, "proxy_identity_required_"
	}
	return &hcmv3.HttpFilter{
		Name:       authz.HTTPFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)},
	}
}

// proxyAuthRequiredReply turns the identity filter's refusal into 407 with
// Proxy-Authenticate, as proxy clients expect.
func proxyAuthRequiredReply() *hcmv3.ResponseMapper {
	m := denialReply(celFilter("response.code_details == '"+ProxyIdentityRequired+"'"), vocab.ReasonPolicyDenied,
		"egressd: this proxy requires an identity: send Proxy-Authorization (Basic identity:secret, or Bearer secret)\n")
	m.StatusCode = wrapperspb.UInt32(407)
	m.HeadersToAdd = append(m.HeadersToAdd, &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "proxy-authenticate", Value: `Basic realm="egressd"`},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	})
	return m
}
