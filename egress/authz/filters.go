package authz

import (
	"fmt"
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/egressd/egressd/serviceentry"
)

// Envoy's names of the RBAC filters.
const (
	// HTTPFilterName is the name of the HTTP RBAC filter.
	HTTPFilterName = "envoy.filters.http.rbac"
	// NetworkFilterName is the name of the network (L4) RBAC filter.
	NetworkFilterName = "envoy.filters.network.rbac"
)

// order is the order of the RBAC filters in a chain, as Istio places them:
// AUDIT first (it only marks), then DENY, then ALLOW.
var order = []serviceentry.AuthzAction{serviceentry.AuthzAudit, serviceentry.AuthzDeny, serviceentry.AuthzAllow}

// layer is where a filter runs: in an HTTP connection manager, or on a TCP
// or TLS filter chain, where HTTP attributes cannot be seen.
type layer int

const (
	layerHTTP layer = iota
	layerNetwork
)

// HTTPFilters returns the RBAC HTTP filters for an HTTP connection manager,
// to be placed before the router: one per action that has policies, in
// Istio's order AUDIT (Envoy action LOG), DENY, ALLOW. The ALLOW filter
// exists only if some ALLOW policy is given (then whatever no ALLOW policy
// matches is denied, even when those policies have no rules); AUDIT and
// DENY filters only if some rule of theirs remains.
//
// policies are those that apply to the gateway (their selectors already
// checked); their order does not matter. Of several with the same
// namespace/name (which serviceentry.CompileConfig never yields) the first
// by file and line is used.
//
// SHADOW_DENY policies (egressd's dry runs) make a first filter of shadow
// rules, which enforces nothing and records what they would deny in the
// request's dynamic metadata (see ShadowDenied).
func HTTPFilters(policies []*serviceentry.AuthorizationPolicy) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if rules, ok := rbacRules(policies, serviceentry.AuthzShadowDeny, layerHTTP); ok {
		out = append(out, &hcmv3.HttpFilter{
			Name:       HTTPFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbachttpv3.RBAC{ShadowRules: rules})},
		})
	}
	for _, action := range order {
		rules, ok := rbacRules(policies, action, layerHTTP)
		if !ok {
			continue
		}
		out = append(out, &hcmv3.HttpFilter{
			Name: HTTPFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbachttpv3.RBAC{
				Rules:           rules,
				RulesStatPrefix: statPrefix(action),
			})},
		})
	}
	return out
}

// NetworkFilters returns the RBAC network filters for a TCP or TLS filter
// chain, to be placed before tcp_proxy, in the same order and with the same
// semantics as HTTPFilters, except for what TCP cannot see: in an ALLOW
// policy a rule that needs methods, paths or request headers matches
// nothing (it is dropped; of its operations only those that need none of
// them remain), and in a DENY or AUDIT policy those fields and conditions
// are removed, so that the rule matches more (fail closed). Hosts match the
// TLS SNI.
func NetworkFilters(policies []*serviceentry.AuthorizationPolicy) []*listenerv3.Filter {
	var out []*listenerv3.Filter
	if rules, ok := rbacRules(policies, serviceentry.AuthzShadowDeny, layerNetwork); ok {
		out = append(out, &listenerv3.Filter{
			Name: NetworkFilterName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&rbacnetworkv3.RBAC{
				ShadowRules: rules, StatPrefix: statPrefix(serviceentry.AuthzShadowDeny),
			})},
		})
	}
	for _, action := range order {
		rules, ok := rbacRules(policies, action, layerNetwork)
		if !ok {
			continue
		}
		out = append(out, &listenerv3.Filter{
			Name: NetworkFilterName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&rbacnetworkv3.RBAC{
				Rules:      rules,
				StatPrefix: statPrefix(action),
			})},
		})
	}
	return out
}

// statPrefix is the stats prefix of the filter of one action:
// "authz_deny.".
func statPrefix(a serviceentry.AuthzAction) string {
	return "authz_" + strings.ToLower(string(a)) + "."
}

// rbacRules builds the RBAC rules of every policy with action a. ok is
// false when no filter is needed: no policy has the action, or (for AUDIT
// and DENY, which match nothing without rules) no rule remains.
func rbacRules(policies []*serviceentry.AuthorizationPolicy, a serviceentry.AuthzAction, l layer) (*rbacv3.RBAC, bool) {
	var selected []*serviceentry.AuthorizationPolicy
	for _, p := range policies {
		if p != nil && p.Action == a {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return nil, false
	}
	slices.SortStableFunc(selected, func(x, y *serviceentry.AuthorizationPolicy) int { return serviceentry.CompareRefs(x.Ref, y.Ref) })

	out := &rbacv3.RBAC{Action: rbacAction(a)}
	seen := map[string]bool{}
	for _, p := range selected {
		key := p.Ref.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		for i, r := range p.Rules {
			semantics := a
			if a == serviceentry.AuthzShadowDeny {
				semantics = serviceentry.AuthzDeny // matches what the DENY would
			}
			pol, ok := rulePolicy(r, semantics, l)
			if !ok {
				continue
			}
			if out.Policies == nil {
				out.Policies = map[string]*rbacv3.Policy{}
			}
			out.Policies[PolicyName(p.Ref, i)] = pol
		}
	}
	if a != serviceentry.AuthzAllow && len(out.Policies) == 0 {
		return nil, false
	}
	return out, true
}

// rbacAction maps an AuthorizationPolicy action to Envoy's.
func rbacAction(a serviceentry.AuthzAction) rbacv3.RBAC_Action {
	switch a {
	case serviceentry.AuthzDeny, serviceentry.AuthzShadowDeny:
		return rbacv3.RBAC_DENY
	case serviceentry.AuthzAudit:
		return rbacv3.RBAC_LOG
	}
	return rbacv3.RBAC_ALLOW
}

// mustAny packs a filter config with deterministic marshalling, so that
// the policies map gives the same bytes every time. Packing a generated
// message cannot fail; a failure is a programming error.
func mustAny(m proto.Message) *anypb.Any {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("authz: packing %T: %v", m, err))
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}

// ShadowDenied returns the rule ("ns/name#i", PolicyName) of a SHADOW_DENY
// policy that would have denied a request or connection, from Envoy's
// dynamic metadata (the filter_metadata of its access log entry); ok is
// false when none would.
func ShadowDenied(filterMetadata map[string]*structpb.Struct) (policy string, ok bool) {
	for _, ns := range []string{HTTPFilterName, NetworkFilterName} {
		f := filterMetadata[ns].GetFields()
		if f["shadow_engine_result"].GetStringValue() == "denied" {
			return f["shadow_effective_policy_id"].GetStringValue(), true
		}
	}
	return "", false
}
