package authz

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/egressd/egressd/serviceentry"
)

// The names of SourceScope's policies, in the caller's namespace: the
// enforced one and the dry run's.
const (
	sourceScopeName      = "source-scope"
	sourceScopeAuditName = "source-scope-audit"
)

// SourceScope returns the policies that scope the callers of one plaintext
// gateway port, whom the gateway knows only by their source address: each
// namespace with pods (pods: namespace -> pod addresses, from the pod
// index) may reach only the hosts of the port that are exported to it and
// that its Sidecar (or the root namespace's) lists, the same rule the DNS
// proxy and the mesh listener keep (serviceentry.Allowlist.Reachable).
// One DENY policy per namespace that is refused some host,
// "<namespace>/source-scope", its principals the namespace's pod addresses;
// for the namespaces being audited the hosts only their Sidecar refuses go
// into a SHADOW_DENY policy "<namespace>/source-scope-audit" (exportTo is
// enforced even then). Callers the pod index does not know are not scoped.
//
// The hosts of a policy are the refused ones, or, when fewer and the
// gateway refuses unlisted hosts anyway (outbound REGISTRY_ONLY), the
// others (a notHosts rule); a listed host more specific than a refused
// wildcard keeps its own verdict, as the routing picks the most specific
// host.
func SourceScope(a *serviceentry.Allowlist, outbound serviceentry.OutboundMode, root string, audit []string, pods map[string][]netip.Addr, port uint32) []*serviceentry.AuthorizationPolicy {
	if len(pods) == 0 || !scoped(a) {
		return nil
	}
	var hosts []*serviceentry.Host
	for _, h := range a.Hosts() {
		if _, ok := h.Port(port); ok {
			hosts = append(hosts, h)
		}
	}
	var out []*serviceentry.AuthorizationPolicy
	for _, ns := range slices.Sorted(maps.Keys(pods)) {
		if len(pods[ns]) == 0 {
			continue
		}
		auditing := slices.Contains(audit, ns)
		var reachable, denied, audited []string
		for _, h := range hosts {
			switch reason, _ := a.ReachableHost(ns, root, h.Name, h, port); {
			case reason == "":
				reachable = append(reachable, h.Name)
			case reason == "sidecar_scope" && auditing:
				audited = append(audited, h.Name)
			default:
				denied = append(denied, h.Name)
			}
		}
		from := []serviceentry.AuthzSource{{IPBlocks: addrStrings(pods[ns])}}
		complement := outbound == serviceentry.RegistryOnly
		policy := func(name string, action serviceentry.AuthzAction, refused, kept []string) {
			rules := hostRules(refused, kept, complement)
			if len(rules) == 0 {
				return
			}
			for i := range rules {
				rules[i].From = from
			}
			out = append(out, &serviceentry.AuthorizationPolicy{
				Ref:    serviceentry.Ref{Kind: serviceentry.KindAuthorizationPolicy, Namespace: ns, Name: name},
				Action: action,
				Rules:  rules,
			})
		}
		policy(sourceScopeName, serviceentry.AuthzDeny, denied, append(slices.Clone(reachable), audited...))
		policy(sourceScopeAuditName, serviceentry.AuthzShadowDeny, audited, append(slices.Clone(reachable), denied...))
	}
	return out
}

// scoped reports whether anything in a scopes callers by namespace: a
// Sidecar, or an entry not exported everywhere.
func scoped(a *serviceentry.Allowlist) bool {
	if len(a.Sidecars()) > 0 {
		return true
	}
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			if hp.Entry != nil {
				if everywhere, _ := hp.Entry.ExportNamespaces(); !everywhere {
					return true
				}
			}
		}
	}
	return false
}

// hostRules are the rules that match a request whose most specific listed
// host is one of refused (the others listed being kept): by the refused
// hosts, or (if complement: unlisted hosts may match too) by "not any kept
// host" when that is shorter, in both cases with exceptions for the more
// specific hosts a wildcard covers. None when nothing is refused.
func hostRules(refused, kept []string, complement bool) []serviceentry.AuthzRule {
	if len(refused) == 0 {
		return nil
	}
	slices.Sort(refused)
	slices.Sort(kept)
	var rules []serviceentry.AuthzRule
	// one rule for a refused host with exceptions (the kept hosts it
	// covers), one for all the others together.
	exceptional := func(h string, among []string) []string {
		var out []string
		for _, k := range among {
			if covers(h, k) {
				out = append(out, k)
			}
		}
		return out
	}
	if complement && len(kept) < len(refused) {
		// Everything but the kept hosts, and the refused hosts a kept
		// wildcard covers (with their own exceptions).
		rules = append(rules, serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{NotHosts: kept}}})
		for _, r := range refused {
			if slices.ContainsFunc(kept, func(k string) bool { return covers(k, r) }) {
				rules = append(rules, serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{r}, NotHosts: exceptional(r, kept)}}})
			}
		}
		return rules
	}
	var plain []string
	for _, r := range refused {
		if except := exceptional(r, kept); len(except) > 0 {
			rules = append(rules, serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{r}, NotHosts: except}}})
			continue
		}
		plain = append(plain, r)
	}
	if len(plain) > 0 {
		rules = append([]serviceentry.AuthzRule{{To: []serviceentry.AuthzOperation{{Hosts: plain}}}}, rules...)
	}
	return rules
}

// covers reports whether wildcard host w ("*.example.com") covers the
// more specific host h ("a.example.com", "*.b.example.com").
func covers(w, h string) bool {
	suffix, ok := strings.CutPrefix(w, "*")
	return ok && h != w && strings.HasSuffix(h, suffix)
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// IsSourceScopePolicy reports whether a policy reference ("ns/name") names
// one of SourceScope's policies, and returns the caller's namespace; audit
// for a dry run's.
func IsSourceScopePolicy(ref string) (namespace string, audit, ok bool) {
	ns, name, found := strings.Cut(ref, "/")
	switch {
	case !found:
		return "", false, false
	case name == sourceScopeName:
		return ns, false, true
	case name == sourceScopeAuditName:
		return ns, true, true
	}
	return "", false, false
}

// SourceScopeHTTP is the one HTTP RBAC filter config of SourceScope's
// policies (delivered by ECDS, so that pod churn changes it alone): the
// DENY policies as rules, the dry runs as shadow rules. Without policies
// it enforces nothing.
func SourceScopeHTTP(policies []*serviceentry.AuthorizationPolicy) *rbachttpv3.RBAC {
	out := &rbachttpv3.RBAC{}
	if rules, ok := rbacRules(policies, serviceentry.AuthzDeny, layerHTTP); ok {
		out.Rules, out.RulesStatPrefix = rules, "source_scope."
	}
	if rules, ok := rbacRules(policies, serviceentry.AuthzShadowDeny, layerHTTP); ok {
		// No shadow stat prefix: Envoy would put it before the dynamic
		// metadata's keys too, which ShadowDenied reads as they are.
		out.ShadowRules = rules
	}
	return out
}

// SourceScopeNetwork is SourceScopeHTTP for a TLS filter chain (hosts
// match the SNI).
func SourceScopeNetwork(policies []*serviceentry.AuthorizationPolicy) *rbacnetworkv3.RBAC {
	out := &rbacnetworkv3.RBAC{StatPrefix: "source_scope."}
	if rules, ok := rbacRules(policies, serviceentry.AuthzDeny, layerNetwork); ok {
		out.Rules = rules
	}
	if rules, ok := rbacRules(policies, serviceentry.AuthzShadowDeny, layerNetwork); ok {
		out.ShadowRules = rules
	}
	return out
}
