package serviceentry

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// KindSidecar is the kind of Istio Sidecars.
const KindSidecar = "Sidecar"

// Sidecar is the egress part of one namespace-wide Istio Sidecar that
// passed validation: which external hosts the workloads of its namespace
// may reach (spec.egress[].hosts). In the mesh root namespace it is the
// default of every namespace without a Sidecar of its own.
type Sidecar struct {
	Ref   Ref          `json:"ref"`
	Hosts []EgressHost `json:"hosts"`
}

// EgressHost is one "namespace/host" of a Sidecar's egress: Namespace is
// a namespace, "." (the Sidecar's own), "*" (any) or "~" (none); Host is
// a host, "*.suffix" or "*".
type EgressHost struct {
	Namespace string `json:"namespace"`
	Host      string `json:"host"`
}

// ValidateSidecar checks one decoded Sidecar and keeps its egress hosts.
// A Sidecar with a workloadSelector is for some workloads only, which the
// gateway cannot tell apart: it is kept out with a warning. It returns
// nil when the resource has any SeverityError or is not applied.
func ValidateSidecar(o Object) (*Sidecar, []Problem) {
	v := &validator{ref: o.Ref}
	sc := o.Sidecar
	if sc == nil {
		v.errorf("spec", "missing; a Sidecar needs a spec with egress hosts")
		return nil, v.problems
	}
	if sc.GetWorkloadSelector() != nil {
		v.warnf("spec.workloadSelector", "a Sidecar for selected workloads only: the gateway tells callers apart by namespace, not by workload, so egressd does not apply it; use a Sidecar without workloadSelector for the namespace")
		return nil, v.problems
	}
	out := &Sidecar{Ref: o.Ref}
	if len(sc.GetEgress()) == 0 {
		v.warnf("spec.egress", "none: the namespace's workloads may reach every listed host (the Sidecar limits nothing egressd enforces)")
	}
	for i, eg := range sc.GetEgress() {
		field := fmt.Sprintf("spec.egress[%d]", i)
		if eg.GetPort() != nil {
			v.warnf(field+".port", "egressd applies a Sidecar's egress hosts to every port; ignored")
		}
		if len(eg.GetHosts()) == 0 {
			v.errorf(field+".hosts", "missing; list namespace/host entries such as \"./*\" or \"istio-system/*\"")
		}
		for j, h := range eg.GetHosts() {
			hf := fmt.Sprintf("%s.hosts[%d]", field, j)
			ns, host, ok := strings.Cut(h, "/")
			if !ok || ns == "" || host == "" {
				v.errorf(hf, "%q: want namespace/host, e.g. \"./*\", \"istio-system/*\" or \"payments/api.stripe.com\"", h)
				continue
			}
			if ns != "." && ns != "*" && ns != "~" && !IsDNS1123Label(ns) {
				v.errorf(hf, "%q: %q is not a namespace, \".\", \"*\" or \"~\"", h, ns)
				continue
			}
			if host != "*" {
				n, err := NormalizeHost(host)
				if err != nil {
					v.errorf(hf, "%q: %v", h, err)
					continue
				}
				host = n
			}
			out.Hosts = append(out.Hosts, EgressHost{Namespace: ns, Host: host})
		}
	}
	v.unapplied("spec", sc, "egress", "workload_selector", "ingress", "outbound_traffic_policy")
	if sc.GetOutboundTrafficPolicy() != nil {
		v.warnf("spec.outboundTrafficPolicy", "egressd's outbound mode is the gateway's (--outbound); ignored")
	}
	if hasErrors(v.problems) {
		return nil, v.problems
	}
	return out, v.problems
}

// Allows reports whether egress host e lets a caller from namespace
// caller reach host name, listed by an entry of namespace entryNS. A
// wildcard listed host is allowed by a pattern that covers it or equals it.
func (e EgressHost) Allows(caller, entryNS, name string) bool {
	switch e.Namespace {
	case "~":
		return false
	case "*":
	case ".":
		if entryNS != caller {
			return false
		}
	default:
		if entryNS != e.Namespace {
			return false
		}
	}
	switch {
	case e.Host == "*" || e.Host == name:
		return true
	case IsWildcard(e.Host):
		suffix := strings.TrimPrefix(e.Host, "*")
		return strings.HasSuffix(name, suffix) && (!IsWildcard(name) || strings.HasSuffix(strings.TrimPrefix(name, "*"), suffix))
	}
	return false
}

// AuditNamespaces are the namespaces the source marks as dry-running their
// Sidecar (sorted; see SidecarAuditLabel): what it would refuse is let
// through and recorded as audit-deny.
func (a *Allowlist) AuditNamespaces() []string { return a.auditNamespaces }

// SidecarAuditLabel on a Namespace (value "true") marks it as dry-running
// its Sidecar; the Kubernetes source reads it.
const SidecarAuditLabel = "egressd.io/sidecar-dry-run"

// Sidecars returns the Sidecars compiled in, by namespace/name (one per
// namespace: the first). Callers must not modify it.
func (a *Allowlist) Sidecars() []*Sidecar { return a.sidecars }

// SidecarFor returns the Sidecar that scopes callers from namespace: the
// namespace's own, else the root namespace's, else nil (no scope).
func (a *Allowlist) SidecarFor(namespace, root string) *Sidecar {
	if root == "" {
		root = DefaultRootNamespace
	}
	var rootSC *Sidecar
	for _, s := range a.sidecars {
		if s.Ref.Namespace == namespace {
			return s
		}
		if s.Ref.Namespace == root {
			rootSC = s
		}
	}
	return rootSC
}

// Reachable says whether a caller from namespace may reach host name
// listed by entry e, and if not why: "" when it may, else the reason
// (vocab reason names: "not_exported" when e's exportTo leaves the
// namespace out, "sidecar_scope" when the namespace's Sidecar does not
// list it) and the detail.
func (a *Allowlist) Reachable(namespace, root, name string, e *Entry) (reason, detail string) {
	if e == nil {
		return "", ""
	}
	if !e.ExportedTo(namespace) {
		return "not_exported", fmt.Sprintf("ServiceEntry %s is not exported to namespace %s (exportTo)", e.Ref, namespace)
	}
	s := a.SidecarFor(namespace, root)
	if s == nil {
		return "", ""
	}
	if s.Allows(namespace, e.Ref.Namespace, name) {
		return "", ""
	}
	return "sidecar_scope", fmt.Sprintf("Sidecar %s does not list %s/%s among the egress hosts of namespace %s", s.Ref, e.Ref.Namespace, name, namespace)
}

// ReachableHost is Reachable for listed host h (asked for as name: the
// host, or a name its wildcard covers) on service port port, or on any of
// its ports when port is 0: "" when an entry of one of those ports lets
// the namespace reach it, else the reason of the last refusal, a Sidecar's
// before an exportTo's (the namespace's own lockdown is what it can
// change).
func (a *Allowlist) ReachableHost(namespace, root, name string, h *Host, port uint32) (reason, detail string) {
	for _, hp := range h.Ports {
		if port != 0 && hp.Number != port {
			continue
		}
		r, d := a.Reachable(namespace, root, name, hp.Entry)
		if r == "" {
			return "", ""
		}
		if reason == "" || r == "sidecar_scope" {
			reason, detail = r, d
		}
	}
	return reason, detail
}

// ExportNamespaces says where e is visible (its exportTo): everywhere (no
// exportTo, or "*"), else in the namespaces listed ("." is e's own; none
// for "~"), sorted.
func (e *Entry) ExportNamespaces() (everywhere bool, namespaces []string) {
	if len(e.ExportTo) == 0 {
		return true, nil
	}
	for _, x := range e.ExportTo {
		switch x {
		case "*":
			return true, nil
		case "~":
		case ".":
			namespaces = append(namespaces, e.Ref.Namespace)
		default:
			namespaces = append(namespaces, x)
		}
	}
	return false, slices.Compact(slices.Sorted(slices.Values(namespaces)))
}

// ExportedTo reports whether e is visible in namespace: ExportNamespaces
// for one namespace, without building the list (the DNS proxy asks it for
// every scoped query).
func (e *Entry) ExportedTo(namespace string) bool {
	if len(e.ExportTo) == 0 {
		return true
	}
	for _, x := range e.ExportTo {
		if x == "*" || x == namespace || x == "." && e.Ref.Namespace == namespace {
			return true
		}
	}
	return false
}

// Allows reports whether s lets a caller from namespace caller reach
// host, listed by an entry of namespace entryNS.
func (s *Sidecar) Allows(caller, entryNS, host string) bool {
	for _, h := range s.Hosts {
		if h.Allows(caller, entryNS, host) {
			return true
		}
	}
	return false
}

// keepSidecars keeps the first Sidecar of each namespace by name, and
// reports the others (Istio allows one namespace-wide Sidecar).
func (a *Allowlist) keepSidecars(in []*Sidecar) {
	sorted := append([]*Sidecar(nil), in...)
	sort.SliceStable(sorted, func(i, j int) bool { return refLess(sorted[i].Ref, sorted[j].Ref) })
	seen := map[string]Ref{}
	for _, s := range sorted {
		if prev, ok := seen[s.Ref.Namespace]; ok {
			a.problems = append(a.problems, Problem{Ref: s.Ref, Code: CodeDuplicateName, Severity: SeverityError,
				Message: fmt.Sprintf("namespace %s already has the Sidecar %s without a workloadSelector; Istio allows one: merge them (this one is ignored)", s.Ref.Namespace, prev)})
			continue
		}
		seen[s.Ref.Namespace] = s.Ref
		a.sidecars = append(a.sidecars, s)
	}
}
