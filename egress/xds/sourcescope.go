package xds

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

// Source scope (Options.SourceScope): on the plaintext ports the gateway
// knows a caller only by its address; the pod index names its namespace.
// Every plaintext HTTP connection manager and TLS passthrough chain runs
// one RBAC filter whose configuration comes by ECDS, one resource per port
// and layer: which namespace (its pod addresses) may not reach which host
// (authz.SourceScope). Pods come and go without touching a listener or a
// route: only those few resources change.

// The type URLs of the RBAC filters ECDS delivers.
const (
	rbacHTTPType    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	rbacNetworkType = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// SourceScopeName is the ECDS resource (and filter) name of a port's
// source-scope RBAC: "egressd-source-scope-http-80", "...-tls-443".
func SourceScopeName(port uint32, http bool) string {
	if http {
		return fmt.Sprintf("egressd-source-scope-http-%d", port)
	}
	return fmt.Sprintf("egressd-source-scope-tls-%d", port)
}

// scopeRef names one source-scope resource: its port and layer.
type scopeRef struct {
	port uint32
	http bool
}

// sourceScopeHTTPFilter is the HTTP filter of a plaintext connection
// manager that takes its RBAC from ECDS. Without it (a failed or missing
// resource, no default), Envoy does not serve the listener: it fails
// closed.
func sourceScopeHTTPFilter(port uint32) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       SourceScopeName(port, true),
		ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: scopeDiscovery(rbacHTTPType)},
	}
}

// sourceScopeNetworkFilter is sourceScopeHTTPFilter for a TLS chain.
func sourceScopeNetworkFilter(port uint32) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       SourceScopeName(port, false),
		ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: scopeDiscovery(rbacNetworkType)},
	}
}

func scopeDiscovery(typeURL string) *corev3.ExtensionConfigSource {
	return &corev3.ExtensionConfigSource{
		ConfigSource: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		},
		TypeUrls: []string{typeURL},
	}
}

// scopedChain reports whether a port listener's chain gets the source
// scope filter: a TLS passthrough chain to a listed host (by SNI), not the
// refusing ones, nor those taken by destination address (TCP entries,
// which name no host).
func scopedChain(c *gateway.Chain) bool {
	f := c.Forward
	if f == nil || len(c.Match.Destinations) > 0 || f.Cluster == BlackholeCluster && !f.ClusterBySNI {
		return false
	}
	return c.Match.Transport == gateway.TransportTLS || len(c.Match.ServerNames) > 0
}

// scopeRefs are the source-scope resources the port listeners of g name
// (Options.SourceScope on): the chains' filters are built by the same
// predicates.
func scopeRefs(g *gateway.Gateway) map[scopeRef]bool {
	refs := map[scopeRef]bool{}
	for _, p := range g.Ports {
		for _, c := range append(slices.Clone(p.Chains), p.Default) {
			switch {
			case c == nil:
			case c.HTTP != nil && !c.HTTP.Mesh:
				refs[scopeRef{c.Port, true}] = true
			case scopedChain(c):
				refs[scopeRef{c.Port, false}] = true
			}
		}
	}
	return refs
}

// sourceScopes builds the source-scope resources the listeners name, for
// allowlist a and the pods by namespace; sorted by name.
func sourceScopes(refs map[scopeRef]bool, a *serviceentry.Allowlist, o Options, pods map[string][]netip.Addr) []*corev3.TypedExtensionConfig {
	if len(refs) == 0 {
		return nil
	}
	root := ""
	if o.Scope != nil {
		root = o.Scope.RootNamespace
	}
	audit := slices.Concat(o.AuditNamespaces, a.AuditNamespaces())
	byPort := map[uint32][]*serviceentry.AuthorizationPolicy{}
	out := make([]*corev3.TypedExtensionConfig, 0, len(refs))
	for ref := range refs {
		policies, ok := byPort[ref.port]
		if !ok {
			policies = authz.SourceScope(a, o.Outbound, root, audit, pods, ref.port)
			byPort[ref.port] = policies
		}
		ext := &corev3.TypedExtensionConfig{Name: SourceScopeName(ref.port, ref.http)}
		if ref.http {
			ext.TypedConfig = mustAny(authz.SourceScopeHTTP(policies))
		} else {
			ext.TypedConfig = mustAny(authz.SourceScopeNetwork(policies))
		}
		out = append(out, ext)
	}
	slices.SortFunc(out, func(x, y *corev3.TypedExtensionConfig) int { return strings.Compare(x.Name, y.Name) })
	return out
}
