package gateway

import (
	"fmt"
	"slices"
	"sort"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// meshSNI is the server name an Istio sidecar sends when it originates
// ISTIO_MUTUAL to an egress gateway for host:port.
func meshSNI(host string, port uint32) string {
	return fmt.Sprintf("outbound_.%d_._.%s", port, host)
}

// meshMode is the gateway's PeerAuthentication mode on the mesh port:
// the first of the policies that apply (the most specific first, see
// serviceentry.PolicyScope) that sets one, port level first; PERMISSIVE
// without any, as in Istio.
func meshMode(peers []*serviceentry.PeerAuthentication, port uint32) serviceentry.MTLSMode {
	for _, pa := range peers {
		if m, ok := pa.PortModes[port]; ok && m != serviceentry.MTLSUnset {
			return m
		}
		if pa.Mode != "" && pa.Mode != serviceentry.MTLSUnset {
			return pa.Mode
		}
	}
	return serviceentry.MTLSPermissive
}

// mesh plans the mesh listener: it terminates mesh mTLS and then treats
// the inner traffic as the host's port says: HTTP through the port's route
// table, TLS passed through to the host. AuthorizationPolicies apply, and,
// the caller being known here, each ServiceEntry's exportTo: callers from
// namespaces it is not exported to are refused. Server names no entry
// allows match no chain and are closed and logged. chains are the ports'
// (meshChains), in port order.
func (p *planner) mesh(a *serviceentry.Allowlist, chains []*Chain) *Mesh {
	mp := p.o.MeshPort
	policies, _ := a.AuthorizationPoliciesFor(p.o.Scope)
	peers, _ := a.PeerAuthenticationsFor(p.o.Scope)
	m := &Mesh{
		Port:     mp,
		Listen:   mp + p.o.PortOffset,
		Mode:     meshMode(peers, mp),
		Policies: append(append(append([]*serviceentry.AuthorizationPolicy(nil), policies...), authz.ExportTo(a)...), authz.SidecarScope(a, p.root(), append(slices.Clone(p.o.AuditNamespaces), a.AuditNamespaces()...))...),
		Chains:   chains,
	}
	m.Default = &Chain{
		Name:    vocab.Chain{Kind: vocab.ChainMeshUnlisted}.String(),
		Port:    mp,
		Forward: &Forward{Cluster: BlackholeCluster, Logs: []Log{{Layer: vocab.LayerTLS, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, Mesh: true}}},
	}
	return m
}

// plainSNIPort is the port a mesh caller reaches when its server name is
// the host itself: 443 if the host has it, else its first TLS port, else
// its first port.
func plainSNIPort(h *serviceentry.Host) uint32 {
	var firstTLS uint32
	for _, p := range h.Ports {
		if p.Number == 443 {
			return 443
		}
		if firstTLS == 0 && p.Protocol.Class() == serviceentry.ClassTLS {
			firstTLS = p.Number
		}
	}
	if firstTLS != 0 {
		return firstTLS
	}
	if len(h.Ports) > 0 {
		return h.Ports[0].Number
	}
	return 0
}

// meshChains are the mesh listener's chains for one planned port.
func (p *planner) meshChains(ph *portHosts, port *Port) []*Chain {
	var chains []*Chain
	if routes := port.Routes; len(ph.http) > 0 && routes != nil {
		var names []string
		for _, hp := range ph.http {
			if !hp.host.Wildcard {
				names = append(names, meshSNI(hp.host.Name, ph.number))
			}
			if hp.sniPort == ph.number {
				names = append(names, hp.host.Name)
			}
		}
		if len(names) > 0 {
			sort.Strings(names)
			chains = append(chains, &Chain{
				Name:    vocab.Chain{Kind: vocab.ChainMeshHTTP, Port: ph.number}.String(),
				Port:    ph.number,
				Match:   Match{ServerNames: names, Transport: TransportTLS},
				MeshTLS: true,
				HTTP: &HTTP{Routes: routes.Name, StatPrefix: fmt.Sprintf("egress_mesh_http_%d", ph.number), Mesh: true,
					Dynamic: routes.Dynamic, ByHost: routes.ByHost},
			})
		}
	}
	for _, hp := range ph.tls {
		if hp.host.Wildcard && dynamic(hp) && hp.hp.Route == nil {
			continue // the inner SNI is hidden behind the mesh TLS: nothing to forward by
		}
		var names []string
		if !hp.host.Wildcard {
			names = append(names, meshSNI(hp.host.Name, ph.number))
		}
		if hp.sniPort == ph.number {
			names = append(names, hp.host.Name)
		}
		if len(names) == 0 {
			continue
		}
		t := hp.target() // a VirtualService's route may send it to another host
		chains = append(chains, &Chain{
			Name:    vocab.Chain{Kind: vocab.ChainMeshTLS, Port: ph.number, Target: hp.host.Name}.String(),
			Port:    ph.number,
			Match:   Match{ServerNames: names, Transport: TransportTLS},
			MeshTLS: true,
			// Inside mesh TLS the server name Envoy sees is the mesh
			// one: the policies' hosts are decided for this host.
			Forward: &Forward{Cluster: p.passthroughCluster(t), AuthorizeHost: hp.host.Name, Logs: []Log{
				{Layer: vocab.LayerTLS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, ServiceEntry: t.hp.Entry.Ref.String(), Mesh: true},
			}},
		})
	}
	return chains
}

// root is the mesh root namespace (Options.Scope's, else Istio's default).
func (p *planner) root() string {
	if p.o.Scope != nil && p.o.Scope.RootNamespace != "" {
		return p.o.Scope.RootNamespace
	}
	return serviceentry.DefaultRootNamespace
}
