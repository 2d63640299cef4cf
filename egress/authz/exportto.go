package authz

import (
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
			if e == nil || exportedEverywhere(e.ExportTo) {
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
		if allowed := exportedTo(t.entry); len(allowed) > 0 {
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

func exportedEverywhere(exportTo []string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, x := range exportTo {
		if x == "*" {
			return true
		}
	}
	return false
}

// exportedTo lists the namespaces an entry is exported to ("." is its own);
// empty for "~" (nobody).
func exportedTo(e *serviceentry.Entry) []string {
	seen := map[string]bool{}
	for _, x := range e.ExportTo {
		switch x {
		case "~":
		case ".":
			seen[e.Ref.Namespace] = true
		default:
			seen[x] = true
		}
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
