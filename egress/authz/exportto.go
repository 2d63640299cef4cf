package authz

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/egressd/egressd/serviceentry"
)

// exportPrefix marks the DENY policies that enforce a ServiceEntry's
// exportTo: their name is "exportto.<entry name>" in the entry's namespace.
const exportPrefix = "exportto."

// ExportTo returns DENY policies that enforce each ServiceEntry's exportTo
// where the caller is known (the mesh listener): a host whose entry is
// exported to some namespaces only is refused to callers from any other
// namespace, and to callers without an identity ("~" exports to nobody).
// Entries exported everywhere (no exportTo, or "*") need none.
func ExportTo(a *serviceentry.Allowlist) []*serviceentry.AuthorizationPolicy {
	type target struct {
		entry *serviceentry.Entry
		hosts map[string]bool
	}
	byEntry := map[string]*target{}
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			e := hp.Entry
			if e == nil {
				continue
			}
			if everywhere, _ := e.ExportNamespaces(); everywhere {
				continue
			}
			key := e.Ref.String()
			t := byEntry[key]
			if t == nil {
				t = &target{entry: e, hosts: map[string]bool{}}
				byEntry[key] = t
			}
			t.hosts[h.Name] = true
		}
	}
	keys := make([]string, 0, len(byEntry))
	for k := range byEntry {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*serviceentry.AuthorizationPolicy, 0, len(keys))
	for _, k := range keys {
		t := byEntry[k]
		// By host only: on the mesh listener the destination port is the
		// listener's, not the service port the entry names.
		op := serviceentry.AuthzOperation{Hosts: sortedKeys(t.hosts)}
		rule := serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{op}}
		if _, allowed := t.entry.ExportNamespaces(); len(allowed) > 0 {
			rule.From = []serviceentry.AuthzSource{{NotNamespaces: allowed}}
		}
		out = append(out, &serviceentry.AuthorizationPolicy{
			Ref:    serviceentry.Ref{Kind: serviceentry.KindAuthorizationPolicy, Namespace: t.entry.Ref.Namespace, Name: exportPrefix + t.entry.Ref.Name},
			Action: serviceentry.AuthzDeny,
			Rules:  []serviceentry.AuthzRule{rule},
		})
	}
	return out
}

// IsExportPolicy reports whether a policy reference ("ns/name") names one
// of ExportTo's policies, and returns the ServiceEntry ("ns/name") it
// enforces.
func IsExportPolicy(ref string) (serviceEntry string, ok bool) {
	ns, name, found := strings.Cut(ref, "/")
	if !found || !strings.HasPrefix(name, exportPrefix) {
		return "", false
	}
	return ns + "/" + strings.TrimPrefix(name, exportPrefix), true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sidecarPrefix marks the DENY policies that enforce a Sidecar's egress
// hosts: "sidecar.<sidecar name>" in the Sidecar's namespace;
// sidecarAuditPrefix the SHADOW_DENY ones of a dry run.
const (
	sidecarPrefix      = "sidecar."
	sidecarAuditPrefix = "sidecar-audit."
)

// SidecarScope returns DENY policies that enforce the Sidecars' egress
// hosts where the caller is known (the mesh listener): a caller from a
// namespace with a Sidecar of its own reaches only the listed hosts its
// Sidecar lists; a caller from any other namespace only those the root
// namespace's Sidecar lists (when there is one). Callers without an
// identity are scoped by the root Sidecar, having no namespace of their
// own. exportTo is ExportTo's.
//
// Callers from the audit namespaces are not refused: their rules are
// SHADOW_DENY policies ("sidecar-audit.<name>"), which only record what
// the Sidecar would refuse (a dry run).
func SidecarScope(a *serviceentry.Allowlist, root string, audit []string) []*serviceentry.AuthorizationPolicy {
	sidecars := a.Sidecars()
	if len(sidecars) == 0 {
		return nil
	}
	if root == "" {
		root = serviceentry.DefaultRootNamespace
	}
	own := map[string]bool{}
	auditing := map[string]bool{}
	for _, ns := range audit {
		auditing[ns] = true
	}
	var rootSC *serviceentry.Sidecar
	for _, s := range sidecars {
		if s.Ref.Namespace == root {
			rootSC = s
			continue
		}
		own[s.Ref.Namespace] = true
	}
	// The root Sidecar exempts the namespaces with their own, and those
	// being audited.
	exemptNames := sortedKeys(own)
	for _, ns := range audit {
		if !own[ns] && ns != "" {
			exemptNames = append(exemptNames, ns)
		}
	}
	sort.Strings(exemptNames)
	exemptNames = slices.Compact(exemptNames)
	var hosts []listedHost
	seen := map[listedHost]bool{}
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			if hp.Entry == nil {
				continue
			}
			l := listedHost{h.Name, hp.Entry.Ref.Namespace}
			if !seen[l] {
				seen[l] = true
				hosts = append(hosts, l)
			}
		}
	}
	var out []*serviceentry.AuthorizationPolicy
	for _, s := range sidecars {
		if s.Ref.Namespace == root {
			continue
		}
		if rule, ok := sidecarRule(s, s.Ref.Namespace, hosts); ok {
			out = append(out, sidecarPolicy(s, []serviceentry.AuthzRule{rule}, auditing[s.Ref.Namespace]))
		}
	}
	if rootSC != nil {
		// The audited namespaces without a Sidecar of their own dry-run
		// the root one.
		var rules []serviceentry.AuthzRule
		for _, ns := range exemptNames {
			if auditing[ns] && !own[ns] {
				if rule, ok := sidecarRule(rootSC, ns, hosts); ok {
					rules = append(rules, rule)
				}
			}
		}
		if len(rules) > 0 {
			out = append(out, sidecarPolicy(rootSC, rules, true))
		}
	}
	if rootSC != nil {
		// Callers of every namespace without a Sidecar: a host the root
		// Sidecar lists only for its own namespace (".") is allowed to
		// callers from the entry's namespace.
		byExempt := map[string]map[string]bool{} // exempt namespace ("" none) -> hosts
		for _, l := range hosts {
			if sidecarAllowsAll(rootSC, l.namespace, l.host) {
				continue
			}
			exempt := ""
			if rootSC.Allows(l.namespace, l.namespace, l.host) && !own[l.namespace] && !auditing[l.namespace] {
				exempt = l.namespace
			}
			if byExempt[exempt] == nil {
				byExempt[exempt] = map[string]bool{}
			}
			byExempt[exempt][l.host] = true
		}
		var rules []serviceentry.AuthzRule
		for _, exempt := range slices.Sorted(maps.Keys(byExempt)) {
			not := slices.Clone(exemptNames)
			if exempt != "" {
				not = append(not, exempt)
				sort.Strings(not)
			}
			rule := serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: sortedKeys(byExempt[exempt])}}}
			if len(not) > 0 {
				rule.From = []serviceentry.AuthzSource{{NotNamespaces: not}}
			}
			rules = append(rules, rule)
		}
		if len(rules) > 0 {
			out = append(out, sidecarPolicy(rootSC, rules, false))
		}
	}
	return out
}

// sidecarRule is the rule that refuses callers from namespace caller the
// listed hosts s does not let them reach (ok false: none).
func sidecarRule(s *serviceentry.Sidecar, caller string, hosts []listedHost) (serviceentry.AuthzRule, bool) {
	denied := map[string]bool{}
	for _, l := range hosts {
		if !s.Allows(caller, l.namespace, l.host) {
			denied[l.host] = true
		}
	}
	if len(denied) == 0 {
		return serviceentry.AuthzRule{}, false
	}
	return serviceentry.AuthzRule{
		From: []serviceentry.AuthzSource{{Namespaces: []string{caller}}},
		To:   []serviceentry.AuthzOperation{{Hosts: sortedKeys(denied)}},
	}, true
}

// listedHost is a listed host with the namespace of its entry.
type listedHost struct{ host, namespace string }

func sidecarPolicy(s *serviceentry.Sidecar, rules []serviceentry.AuthzRule, audit bool) *serviceentry.AuthorizationPolicy {
	p := &serviceentry.AuthorizationPolicy{
		Ref:    serviceentry.Ref{Kind: serviceentry.KindAuthorizationPolicy, Namespace: s.Ref.Namespace, Name: sidecarPrefix + s.Ref.Name},
		Action: serviceentry.AuthzDeny,
		Rules:  rules,
	}
	if audit {
		p.Ref.Name, p.Action = sidecarAuditPrefix+s.Ref.Name, serviceentry.AuthzShadowDeny
	}
	return p
}

// sidecarAllowsAll reports whether s lets callers from every namespace
// reach host (a pattern whose namespace is "*" or the entry's).
func sidecarAllowsAll(s *serviceentry.Sidecar, entryNS, host string) bool {
	for _, h := range s.Hosts {
		if h.Namespace != "." && h.Allows("", entryNS, host) {
			return true
		}
	}
	return false
}

// IsSidecarPolicy reports whether a policy reference ("ns/name") names one
// of SidecarScope's policies, and returns the Sidecar ("ns/name").
// A dry run's policy gives audit true.
func IsSidecarPolicy(ref string) (sidecar string, audit, ok bool) {
	ns, name, found := strings.Cut(ref, "/")
	switch {
	case !found:
		return "", false, false
	case strings.HasPrefix(name, sidecarAuditPrefix):
		return ns + "/" + strings.TrimPrefix(name, sidecarAuditPrefix), true, true
	case strings.HasPrefix(name, sidecarPrefix):
		return ns + "/" + strings.TrimPrefix(name, sidecarPrefix), false, true
	}
	return "", false, false
}
