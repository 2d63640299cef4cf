package xds

import (
	"fmt"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// MeshOptions turn on the mesh listener: mesh callers (Istio sidecars,
// workloads with an SVID) reach allowed hosts over mutual TLS, so the
// gateway knows who calls and AuthorizationPolicies can say who may.
type MeshOptions struct {
	// Port is the mesh listener's service port (default 15443); the
	// listener binds Port + PortOffset like the others.
	Port uint32
	// CertSecret and BundleSecret are the SDS secrets of the gateway's
	// own certificate and of the mesh trust bundle.
	CertSecret, BundleSecret string
}

// meshSNI is the server name an Istio sidecar sends when it originates
// ISTIO_MUTUAL to an egress gateway for host:port.
func meshSNI(host string, port uint32) string {
	return fmt.Sprintf("outbound_.%d_._.%s", port, host)
}

// meshMode is the gateway's PeerAuthentication mode on the mesh port:
// the first policy by namespace/name that sets one (port level first);
// PERMISSIVE without any, as in Istio.
func meshMode(a *serviceentry.Allowlist, port uint32) serviceentry.MTLSMode {
	for _, pa := range a.PeerAuthentications() {
		if m, ok := pa.PortModes[port]; ok && m != serviceentry.MTLSUnset {
			return m
		}
		if pa.Mode != "" && pa.Mode != serviceentry.MTLSUnset {
			return pa.Mode
		}
	}
	return serviceentry.MTLSPermissive
}

// meshListener terminates mesh mTLS and then treats the inner traffic as
// the host's port says: HTTP through the port's route table, TLS passed
// through to the host. AuthorizationPolicies apply as Envoy RBAC filters.
// Unknown server names match no chain and are closed and logged.
func (t *translator) meshListener(a *serviceentry.Allowlist, plans []*portPlan) {
	m := t.o.Mesh
	mode := meshMode(a, m.Port)
	// The caller is known here, so each ServiceEntry's exportTo applies:
	// callers from namespaces it is not exported to are refused.
	policies := append(append([]*serviceentry.AuthorizationPolicy(nil), a.AuthorizationPolicies()...), authz.ExportTo(a)...)
	l := &listenerv3.Listener{
		Name:                          vocab.MeshListenerName,
		Address:                       socketAddress(t.o.ListenAddress, m.Port+t.o.PortOffset),
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
		}},
	}
	downstream := t.meshTLS(mode)
	for _, p := range plans {
		if len(p.http) > 0 {
			var names []string
			for _, hp := range p.http {
				if !hp.host.Wildcard {
					names = append(names, meshSNI(hp.host.Name, p.number))
				}
				if plainSNIPort(hp.host) == p.number {
					names = append(names, hp.host.Name)
				}
			}
			if len(names) > 0 {
				sort.Strings(names)
				l.FilterChains = append(l.FilterChains, t.meshHTTPChain(p.number, names, downstream, policies))
			}
		}
		for _, hp := range p.tls {
			if hp.host.Wildcard && dynamic(hp) {
				continue // the inner SNI is hidden behind the mesh TLS: nothing to forward by
			}
			var names []string
			if !hp.host.Wildcard {
				names = append(names, meshSNI(hp.host.Name, p.number))
			}
			if plainSNIPort(hp.host) == p.number {
				names = append(names, hp.host.Name)
			}
			if len(names) > 0 {
				l.FilterChains = append(l.FilterChains, t.meshTLSChain(p.number, hp, names, downstream, policies))
			}
		}
	}
	l.DefaultFilterChain = t.meshDenyChain(m.Port)
	t.listeners = append(t.listeners, l)
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

// meshTLS is the downstream TLS of the mesh listener: the gateway's SVID,
// callers verified against the trust bundle; a certificate is required
// under STRICT and optional otherwise (a caller without one is recorded
// as unauthenticated; one from another CA is refused).
func (t *translator) meshTLS(mode serviceentry.MTLSMode) *corev3.TransportSocket {
	m := t.o.Mesh
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(mode == serviceentry.MTLSStrict),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(m.CertSecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret(m.BundleSecret),
			},
		},
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

// meshHTTPChain serves inner HTTP for the port's hosts through the same
// route table as the plaintext listener, behind the RBAC filters.
func (t *translator) meshHTTPChain(port uint32, names []string, downstream *corev3.TransportSocket, policies []*serviceentry.AuthorizationPolicy) *listenerv3.FilterChain {
	hcm := t.httpConnectionManager(httpManager{
		port:       port,
		statPrefix: fmt.Sprintf("egress_mesh_http_%d", port),
		mesh:       true,
		authz:      authz.HTTPFilters(policies),
	})
	return &listenerv3.FilterChain{
		Name:             vocab.Chain{Kind: vocab.ChainMeshHTTP, Port: port}.String(),
		FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names, TransportProtocol: "tls"},
		TransportSocket:  downstream,
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
}

// meshTLSChain passes the caller's inner TLS through to one host, behind
// the network RBAC filters.
func (t *translator) meshTLSChain(port uint32, hp hostPort, names []string, downstream *corev3.TransportSocket, policies []*serviceentry.AuthorizationPolicy) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainMeshTLS, Port: port, Target: hp.host.Name}.String()
	log := t.tcpLogs(port, tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictAllow, reason: vocab.ReasonAllowed, serviceEntry: hp.hp.Entry.Ref.String(), mesh: true})
	cluster := t.addCluster(t.passthroughCluster(hp))
	// Inside mesh TLS the server name Envoy sees is the mesh one: decide
	// the policies' hosts for this chain's host now.
	filters := authz.NetworkFilters(authz.ForHost(policies, hp.host.Name))
	filters = append(filters, tcpProxyFilter(name, cluster, log))
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names, TransportProtocol: "tls"},
		TransportSocket:  downstream,
		Filters:          filters,
	}
}

// meshDenyChain closes mesh connections for server names no entry allows.
func (t *translator) meshDenyChain(port uint32) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainMeshUnlisted}.String()
	log := t.tcpLogs(port, tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictDeny, reason: vocab.ReasonNotInRegistry, mesh: true})
	return &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{tcpProxyFilter(name, BlackholeCluster, log)}}
}
