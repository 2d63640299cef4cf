package serviceentry

import (
	"fmt"
	"maps"
	"slices"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// MTLSMode is a PeerAuthentication's mutual TLS mode, as Istio names it.
type MTLSMode string

// Mutual TLS modes of a PeerAuthentication.
const (
	// MTLSStrict: only mutual TLS connections are accepted.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive: mutual TLS and plaintext connections are accepted.
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSDisable: mutual TLS is not used.
	MTLSDisable MTLSMode = "DISABLE"
	// MTLSUnset: the mode is inherited from the parent policy (the
	// namespace's, else the mesh's; PERMISSIVE when there is none).
	MTLSUnset MTLSMode = "UNSET"
)

// PeerAuthentication is one Istio PeerAuthentication that passed
// validation: the mutual TLS the selected workloads accept.
type PeerAuthentication struct {
	Ref Ref `json:"ref"`
	// Selector is spec.selector.matchLabels; empty selects every workload
	// of the namespace (of the mesh, in Istio's root namespace).
	Selector map[string]string `json:"selector,omitempty"`
	// Mode is spec.mtls.mode; MTLSUnset when not given.
	Mode MTLSMode `json:"mode"`
	// PortModes is spec.portLevelMtls: the mode of single ports, which
	// replaces Mode on that port.
	PortModes map[uint32]MTLSMode `json:"portModes,omitempty"`
}

// Selects reports whether the policy applies to a workload with the given
// labels: its selector is empty, or every selector label is among them.
func (p *PeerAuthentication) Selects(labels map[string]string) bool {
	return selects(p.Selector, labels)
}

// ModeFor returns the mode of port number: its port-level mode if any,
// else the policy's.
func (p *PeerAuthentication) ModeFor(port uint32) MTLSMode {
	if m, ok := p.PortModes[port]; ok {
		return m
	}
	return p.Mode
}

// ValidatePeerAuthentication checks one decoded PeerAuthentication with
// Istio's rules. It returns the normalised policy, or nil when the resource
// has any SeverityError, plus every problem found. Every Problem carries
// o.Ref.
func ValidatePeerAuthentication(o Object) (*PeerAuthentication, []Problem) {
	v := &validator{ref: o.Ref}
	pa := o.PeerAuthentication
	if pa == nil {
		v.errorf("spec", "missing; a PeerAuthentication needs a spec, e.g. {mtls: {mode: STRICT}}")
		return nil, v.problems
	}
	p := &PeerAuthentication{Ref: o.Ref}
	p.Selector = v.selector("spec.selector", pa.GetSelector())
	p.Mode = v.mtlsMode("spec.mtls.mode", pa.GetMtls())
	ports := pa.GetPortLevelMtls()
	if len(ports) > 0 && len(p.Selector) == 0 {
		v.errorf("spec.portLevelMtls", "needs spec.selector.matchLabels: Istio accepts port-level modes only in a policy for selected workloads, not in a namespace- or mesh-wide one; add a selector, or remove portLevelMtls")
	}
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		field := fmt.Sprintf("spec.portLevelMtls[%d]", port)
		if port == 0 || port > 65535 {
			v.errorf(field, "port %d is out of range; use 1-65535", port)
			continue
		}
		if p.PortModes == nil {
			p.PortModes = map[uint32]MTLSMode{}
		}
		p.PortModes[port] = v.mtlsMode(field+".mode", ports[port])
	}
	if hasError(v.problems) {
		return nil, v.problems
	}
	return p, v.problems
}

// mtlsMode maps one MutualTLS block's mode; nil is MTLSUnset.
func (v *validator) mtlsMode(field string, m *securityv1beta1.PeerAuthentication_MutualTLS) MTLSMode {
	switch m.GetMode() {
	case securityv1beta1.PeerAuthentication_MutualTLS_UNSET:
		return MTLSUnset
	case securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	}
	v.errorf(field, "unknown mode %d; use one of UNSET, DISABLE, PERMISSIVE, STRICT", int32(m.GetMode()))
	return ""
}
