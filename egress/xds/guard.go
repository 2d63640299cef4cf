package xds

import (
	"fmt"
	"net/netip"
	"slices"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/matchers/upstream_ip_port/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// The address guard at the gateway. Where the gateway resolves a
// destination itself, nothing it resolves is connected to unless
// netguard's policy allows it:
//
//   - DNS clusters and the SNI forward proxy resolve through egressd's
//     gateway resolver (Options.DNSResolvers), which drops refused
//     addresses. Their names are written with a trailing dot, so that
//     c-ares neither appends search domains nor answers from the hosts
//     file; for the SNI forward proxy even an SNI that is an address is
//     then asked of the resolver (set_filter_state sets
//     envoy.upstream.dynamic_host to "<SNI>.").
//   - The HTTP forward proxy resolves the Host, which may be an address or
//     a name in the hosts file. It saves the resolved address, and an RBAC
//     filter after it (guardHTTPFilter) refuses the request before any
//     connection is made: 403, forwarding_loop or blocked_address.
//   - STATIC endpoints and ORIGINAL_DST: an endpoint on one of the
//     gateway's own listeners is left out, and the gateway's own addresses
//     are cut out of the ranges an ORIGINAL_DST chain matches.

// Policy names of the guard's RBAC filter, as Envoy reports them in
// response code details ("rbac_access_denied_matched_policy[<name>]").
const (
	GuardPolicyLoop    = "egressd.guard.forwarding_loop"
	GuardPolicyBlocked = "egressd.guard.blocked_address"
)

// guardFilterName is the HTTP filter name of the address guard, distinct
// from the AuthorizationPolicy RBAC filters on the same chains.
const guardFilterName = "egressd.address_guard"

// strippedPrefixes and strippedHeaders never reach an upstream: they would
// tell an external service about the caller, the mesh or the gateway
// (x-envoy-external-address carries the caller's IP; sidecars add
// x-envoy-peer-metadata, x-forwarded-client-cert, x-request-id), nor a
// client's credentials for the proxy (proxy-authorization).
var (
	strippedPrefixes = []string{"x-envoy-", "x-forwarded-"}
	strippedHeaders  = []string{"x-request-id", "proxy-authorization"}
)

// stripHeadersFilter removes strippedPrefixes and strippedHeaders from
// every request, after the connection manager added its own (it runs
// first among the HTTP filters; the router adds none with
// suppress_envoy_headers).
func stripHeadersFilter() *hcmv3.HttpFilter {
	var mutations []*mutationv3.HeaderMutation
	for _, p := range strippedPrefixes {
		mutations = append(mutations, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p},
			}},
		}})
	}
	for _, h := range strippedHeaders {
		mutations = append(mutations, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: h}})
	}
	return &hcmv3.HttpFilter{
		Name: "envoy.filters.http.header_mutation",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&headermutationv3.HeaderMutation{
			Mutations: &headermutationv3.Mutations{RequestMutations: mutations},
		})},
	}
}

// guardHTTPFilter refuses a request whose upstream address, resolved by
// the dynamic forward proxy filter before it, netguard refuses: the
// gateway's own addresses and its own ports on loopback (GuardPolicyLoop),
// and blocked classes that neither the operator nor listed allow
// (GuardPolicyBlocked). The two policies never match the same address.
func guardHTTPFilter(o Options, listed []netip.Prefix) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       guardFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(guardRBAC(o, listed))},
	}
}

func guardRBAC(o Options, listed []netip.Prefix) *rbachttpv3.RBAC {
	allowed := netguard.Normalize(append(slices.Clone(o.Guard.Allow), listed...))
	policies := map[string]*rbacv3.Policy{}
	any := []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}
	loop := selfPermission(o)
	policies[GuardPolicyLoop] = &rbacv3.Policy{Permissions: []*rbacv3.Permission{loop}, Principals: any}
	blocked := []*rbacv3.Permission{upstreamIn(netguard.BlockedPrefixes()), not(loop)}
	if len(allowed) > 0 {
		blocked = append(blocked, not(upstreamIn(allowed)))
	}
	policies[GuardPolicyBlocked] = &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: blocked}}}},
		Principals:  any,
	}
	return &rbachttpv3.RBAC{
		Rules:           &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: policies},
		RulesStatPrefix: "egressd_guard_",
	}
}

// loopbacks are the ranges of the gateway host's own loopback.
var loopbacks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// selfPermission matches an upstream that is the gateway: one of its own
// addresses, or a port of its own on loopback (Envoy's admin interface,
// egressd's listeners), even where the operator allows loopback.
func selfPermission(o Options) *rbacv3.Permission {
	rules := upstreamIn(netguard.Normalize(o.Guard.Self)).GetOrRules().GetRules()
	ports := slices.Clone(o.OwnPorts)
	slices.Sort(ports)
	for _, p := range slices.Compact(ports) {
		for _, lo := range loopbacks {
			rules = append(rules, &rbacv3.Permission{Rule: &rbacv3.Permission_Matcher{Matcher: &corev3.TypedExtensionConfig{
				Name: "envoy.rbac.matchers.upstream_ip_port",
				TypedConfig: mustAny(&upstreamipv3.UpstreamIpPortMatcher{
					UpstreamIp:        cidr(lo),
					UpstreamPortRange: &typev3.Int64Range{Start: int64(p), End: int64(p) + 1},
				}),
			}}})
		}
	}
	if len(rules) == 0 {
		// Nothing is the gateway: a permission that matches nothing.
		return not(&rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}})
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: rules}}}
}

// upstreamIn matches an upstream address (saved by the forward proxy) in
// any of ranges.
func upstreamIn(ranges []netip.Prefix) *rbacv3.Permission {
	rules := make([]*rbacv3.Permission, 0, len(ranges))
	for _, r := range ranges {
		rules = append(rules, &rbacv3.Permission{Rule: &rbacv3.Permission_Matcher{Matcher: &corev3.TypedExtensionConfig{
			Name:        "envoy.rbac.matchers.upstream_ip_port",
			TypedConfig: mustAny(&upstreamipv3.UpstreamIpPortMatcher{UpstreamIp: cidr(r)}),
		}}})
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: rules}}}
}

func not(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func cidr(p netip.Prefix) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: p.Masked().Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

// guardPerRoute overrides the guard for a route whose entry lists
// addresses: those pass too.
func guardPerRoute(o Options, listed []netip.Prefix) map[string]*anyType {
	if len(listed) == 0 {
		return nil
	}
	return map[string]*anyType{guardFilterName: mustAny(&rbachttpv3.RBACPerRoute{Rbac: guardRBAC(o, listed)})}
}

// guardReplies answer a request the guard refused: 403 with the reason in
// the body and in x-egressd-denied, like every other denial.
func guardReplies(port uint32) []*hcmv3.ResponseMapper {
	reply := func(policy string, reason vocab.Reason, why string) *hcmv3.ResponseMapper {
		body := fmt.Sprintf("egressd: the gateway does not connect to %%REQ(:AUTHORITY)%% on port %d: %s\n", port, why)
		return denialReply(celFilter(fmt.Sprintf("response.code_details == 'rbac_access_denied_matched_policy[%s]'", policy)), reason, body)
	}
	return []*hcmv3.ResponseMapper{
		reply(GuardPolicyLoop, vocab.ReasonForwardingLoop, "it resolves to the gateway itself (a forwarding loop)"),
		reply(GuardPolicyBlocked, vocab.ReasonBlockedAddress, "it resolves to a blocked address (loopback, private, link-local or another internal range) that no ServiceEntry lists"),
	}
}

// absoluteSNIFilter makes the SNI forward proxy resolve "<SNI>." through
// the gateway resolver: with the trailing dot c-ares asks the resolver
// even for an SNI that is an address or a name in the hosts file.
func absoluteSNIFilter() *listenerv3.Filter {
	return setFilterState("envoy.upstream.dynamic_host", "%REQUESTED_SERVER_NAME%.")
}
