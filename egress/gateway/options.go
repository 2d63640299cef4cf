package gateway

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// Options are the settings of the gateway that are not in the allowlist
// and that change what it does (how it is spelled in Envoy's terms, the
// access log sinks and resolvers, are the xds package's).
type Options struct {
	// Outbound is what happens to unlisted destinations (default
	// REGISTRY_ONLY).
	Outbound serviceentry.OutboundMode
	// PortOffset is added to every service port to get the listener port.
	PortOffset uint32
	// AlwaysHTTPPorts and AlwaysTLSPorts get a listener even when no entry
	// uses them, so denials on the common ports are answered and logged.
	AlwaysHTTPPorts []uint32
	AlwaysTLSPorts  []uint32
	// Self are the gateway's own addresses: an endpoint there on one of
	// its listener ports is a forwarding loop and left out, and
	// original-destination ranges never include them.
	Self []netip.Prefix
	// OwnPorts are further ports of the gateway's own addresses (Envoy's
	// admin, egressd's listeners), never an upstream.
	OwnPorts []uint32
	// MeshPort, when not 0, adds the mesh listener on that service port.
	MeshPort uint32
	// ProxyPort, when not 0, adds the explicit proxy listener (CONNECT and
	// absolute URIs) on that service port.
	ProxyPort uint32
	// Scope is the gateway's place in the mesh: which AuthorizationPolicies
	// and PeerAuthentications apply to it (serviceentry.PolicyScope). nil
	// applies every one (a configuration written for the gateway alone).
	Scope *serviceentry.PolicyScope
	// AuditNamespaces are the namespaces whose Sidecar is dry-run: their
	// callers are not refused by it (see authz.SidecarScope).
	AuditNamespaces []string
	// SecretNames names the SDS secrets of TLS origination; required when
	// a DestinationRule asks for it.
	SecretNames func(o *serviceentry.Origination) (client, ca string)
}

// ListenerPorts are the ports the gateway's own addresses serve: every
// listener's (service port plus offset), the mesh listener's, OwnPorts.
func (o Options) listenerPorts(ports []uint32) map[uint32]bool {
	out := map[uint32]bool{}
	for _, p := range ports {
		out[p+o.PortOffset] = true
	}
	if o.MeshPort != 0 {
		out[o.MeshPort+o.PortOffset] = true
	}
	if o.ProxyPort != 0 {
		out[o.ProxyPort+o.PortOffset] = true
	}
	for _, p := range o.OwnPorts {
		out[p] = true
	}
	return out
}

func (o Options) isSelf(ip netip.Addr) bool {
	g := netguard.Policy{Self: o.Self}
	return g.IsSelf(ip)
}

func (o Options) check() (Options, error) {
	if o.Outbound == "" {
		o.Outbound = serviceentry.RegistryOnly
	}
	switch o.Outbound {
	case serviceentry.RegistryOnly, serviceentry.AllowAny, serviceentry.Audit:
	default:
		return o, fmt.Errorf("outbound mode %q: must be %s, %s or %s", o.Outbound, serviceentry.RegistryOnly, serviceentry.AllowAny, serviceentry.Audit)
	}
	o.Self = netguard.Normalize(slices.Clone(o.Self))
	return o, nil
}
