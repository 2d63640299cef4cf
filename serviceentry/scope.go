package serviceentry

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultRootNamespace is Istio's default mesh root namespace
// (meshConfig.rootNamespace): a policy there without a selector applies
// to the whole mesh.
const DefaultRootNamespace = "istio-system"

// Workload is where a workload sits in the mesh: its namespace and its
// labels. The gateway is one.
type Workload struct {
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// PolicyScope decides which AuthorizationPolicies and PeerAuthentications
// apply to one workload, as Istio does:
//   - a policy in the root namespace applies to every workload its
//     selector matches (all of them without one), in any namespace;
//   - a policy in the workload's own namespace applies when its selector
//     matches (all workloads of the namespace without one);
//   - any other policy is written for other workloads and does not apply.
//
// For PeerAuthentication, Istio's precedence holds as well: a policy
// with a selector (workload-specific) before a namespace-wide one, before
// the mesh-wide one. A PeerAuthentication in the root namespace with a
// selector applies only to the root namespace's own workloads.
type PolicyScope struct {
	Workload Workload
	// RootNamespace is the mesh root namespace; "" means
	// DefaultRootNamespace.
	RootNamespace string
}

func (s PolicyScope) root() string {
	if s.RootNamespace == "" {
		return DefaultRootNamespace
	}
	return s.RootNamespace
}

// WhyNot says why an AuthorizationPolicy does not apply to the scope's
// workload, "" when it does.
func (s PolicyScope) WhyNot(p *AuthorizationPolicy) string {
	return s.whyNot(p.Ref.Namespace, p.Selector, true)
}

// whyNotPeer is WhyNot for a PeerAuthentication.
func (s PolicyScope) whyNotPeer(p *PeerAuthentication) string {
	return s.whyNot(p.Ref.Namespace, p.Selector, false)
}

// whyNot: rootSelectsEverywhere is whether a root-namespace policy's
// selector reaches other namespaces (AuthorizationPolicy: yes).
func (s PolicyScope) whyNot(namespace string, selector map[string]string, rootSelectsEverywhere bool) string {
	w := s.Workload
	switch {
	case namespace == s.root() && (len(selector) == 0 || rootSelectsEverywhere || namespace == w.Namespace):
	case namespace == w.Namespace:
	case w.Namespace == s.root():
		return fmt.Sprintf("namespace %s is neither the gateway's nor the mesh root (%s): it is for workloads of %s", namespace, s.root(), namespace)
	default:
		return fmt.Sprintf("namespace %s is neither the gateway's (%s) nor the mesh root (%s): it is for workloads of %s", namespace, w.Namespace, s.root(), namespace)
	}
	if !selects(selector, w.Labels) {
		return fmt.Sprintf("its selector %s does not match the gateway's labels %s", labelString(selector), labelString(w.Labels))
	}
	return ""
}

// specificity ranks a PeerAuthentication that applies: 2 workload
// (a selector), 1 the workload's namespace, 0 the mesh.
func (s PolicyScope) specificity(p *PeerAuthentication) int {
	switch {
	case len(p.Selector) > 0:
		return 2
	case p.Ref.Namespace == s.Workload.Namespace && p.Ref.Namespace != s.root():
		return 1
	}
	return 0
}

// NotApplied is a policy of the configuration that does not apply to the
// gateway, and why.
type NotApplied struct {
	Ref Ref    `json:"ref"`
	Why string `json:"why"`
}

// AuthorizationPoliciesFor returns the AuthorizationPolicies that apply
// to scope's workload (all of them when scope is nil), in namespace/name
// order, and those that do not, with the reason.
func (a *Allowlist) AuthorizationPoliciesFor(scope *PolicyScope) (applied []*AuthorizationPolicy, ignored []NotApplied) {
	if scope == nil {
		return a.policies, nil
	}
	for _, p := range a.policies {
		if why := scope.WhyNot(p); why != "" {
			ignored = append(ignored, NotApplied{Ref: p.Ref, Why: why})
			continue
		}
		applied = append(applied, p)
	}
	return applied, ignored
}

// PeerAuthenticationsFor returns the PeerAuthentications that apply to
// scope's workload (all of them, in namespace/name order, when scope is
// nil), the most specific first (workload, namespace, mesh; then by
// namespace/name), and those that do not, with the reason.
func (a *Allowlist) PeerAuthenticationsFor(scope *PolicyScope) (applied []*PeerAuthentication, ignored []NotApplied) {
	if scope == nil {
		return a.peers, nil
	}
	for _, p := range a.peers {
		if why := scope.whyNotPeer(p); why != "" {
			ignored = append(ignored, NotApplied{Ref: p.Ref, Why: why})
			continue
		}
		applied = append(applied, p)
	}
	sort.SliceStable(applied, func(i, j int) bool { return scope.specificity(applied[i]) > scope.specificity(applied[j]) })
	return applied, ignored
}

// labelString writes labels as "{k=v, ...}", sorted.
func labelString(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

// ParseLabels reads "k=v,k2=v2" (spaces around items allowed; "" is no
// labels).
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("label %q: want key=value", item)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
