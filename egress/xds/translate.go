package xds

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

// Resources is the complete gateway configuration for one allowlist.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	// Secrets are the SDS secrets the clusters refer to (TLS origination).
	// Translate leaves them empty: the material is I/O, added by whoever
	// publishes (Server, from its secret source).
	Secrets []*tlsv3.Secret
	// Extensions are the ECDS filter configurations the listeners name
	// (the source scope's RBAC, Options.SourceScope), sorted by name.
	Extensions []*corev3.TypedExtensionConfig
	// Warnings say what translation left out (an endpoint on one of the
	// gateway's own listeners, say), in words, sorted.
	Warnings []string
	// Gateway is the model the resources spell out.
	Gateway *gateway.Gateway

	// allowlist is the version of the allowlist translated; source the
	// allowlist itself, which the source scope is built from again when
	// only the pods change (Server.SetPods).
	allowlist string
	source    *serviceentry.Allowlist
	scopes    map[scopeRef]bool
	podsGen   uint64 // the Server's pods generation the scope was built for
	// onDemand says which clusters Envoy discovers on demand;
	// coreSecrets are the SDS secrets the rest (listeners, other
	// clusters) name.
	onDemand    odSet
	coreSecrets map[string]bool
	// built and known come from translating with a memo: what each
	// resource was built from, and the digests of those reused from it.
	built *memo
	known map[proto.Message]string
	// last are the digests of the publish whose memo was reused.
	last map[string]map[string]string
	// clusterSecrets are the SDS secrets of the clusters that name any,
	// in cluster order (never nil after build).
	clusterSecrets []clusterSecrets
}

// clusterSecrets are the SDS secrets one cluster names.
type clusterSecrets struct {
	cluster string
	secrets []string
}

// SecretNames returns the SDS secrets the clusters and listeners refer
// to, sorted.
func (r *Resources) SecretNames() []string {
	return r.secretNames(func(string) bool { return true })
}

// secretNames returns the SDS secrets the listeners (every filter chain,
// the default one too) and the clusters counted refer to, sorted.
func (r *Resources) secretNames(counted func(cluster string) bool) []string {
	seen := map[string]bool{}
	var out []string
	add := func(names []string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	if r.clusterSecrets == nil { // not built by build: look at every cluster
		for _, c := range r.Clusters {
			if counted(c.Name) {
				add(secretsOf(c))
			}
		}
	}
	for _, cs := range r.clusterSecrets {
		if counted(cs.cluster) {
			add(cs.secrets)
		}
	}
	for _, l := range r.Listeners {
		add(downstreamSecretsOf(l.GetDefaultFilterChain().GetTransportSocket()))
		for _, fc := range l.GetFilterChains() {
			add(downstreamSecretsOf(fc.GetTransportSocket()))
		}
	}
	sort.Strings(out)
	return out
}

// Translate turns an allowlist into the gateway's Envoy resources: it
// plans the gateway (gateway.Plan) and builds the model's resources. It is
// pure and deterministic. The result has one listener per service port
// (plus the always-on ports), each denying whatever no entry allows.
func Translate(a *serviceentry.Allowlist, opts Options) (*Resources, error) {
	return translate(a, opts, nil, nil, nil)
}

// translate is Translate reusing the resources of last (may be nil) whose
// model did not change, and the ports planned with plans (may be nil)
// whose hosts did not.
func translate(a *serviceentry.Allowlist, opts Options, last *memo, plans *gateway.Cache, pods map[string][]netip.Addr) (*Resources, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	g, err := gateway.PlanWith(a, o.plan(), plans)
	if err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		// A planning bug: publish nothing rather than a gateway the model's
		// own rules refuse.
		return nil, fmt.Errorf("xds: the planned gateway model is invalid: %w", err)
	}
	res := build(g, o, last)
	res.allowlist, res.source = a.Version(), a
	if o.SourceScope {
		res.scopes = scopeRefs(g)
		res.Extensions = sourceScopes(res.scopes, a, o, pods)
	}
	return res, nil
}

// Build spells a gateway model out as Envoy resources: Translate for a
// model already planned (or edited).
func Build(g *gateway.Gateway, opts Options) (*Resources, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("xds: the gateway model is invalid: %w", err)
	}
	return build(g, o, nil), nil
}

// plan are the options of the gateway model.
func (o Options) plan() gateway.Options {
	p := gateway.Options{
		Outbound:        o.Outbound,
		PortOffset:      o.PortOffset,
		AlwaysHTTPPorts: o.AlwaysHTTPPorts,
		AlwaysTLSPorts:  o.AlwaysTLSPorts,
		Self:            o.Guard.Self,
		OwnPorts:        o.OwnPorts,
		SecretNames:     o.SecretNames,
		Scope:           o.Scope,
		AuditNamespaces: o.AuditNamespaces,
		ProxyPort:       o.ProxyPort,
	}
	if o.Mesh != nil {
		p.MeshPort = o.Mesh.Port
	}
	return p
}

// build spells a gateway model out as Envoy resources, reusing those of
// last (may be nil) whose part of the model is unchanged. o has been
// through withDefaults.
func build(g *gateway.Gateway, o Options, last *memo) *Resources {
	b := &builder{o: o, last: last, next: last.successor(), known: make(map[proto.Message]string, last.built()),
		logs: map[string][]*accesslogv3.AccessLog{}, dnsTypes: map[bool]*clusterv3.Cluster_ClusterType{},
		sniFilters: map[uint32]*listenerv3.Filter{}}
	res := &Resources{Gateway: g, Warnings: g.Warnings, allowlist: g.Allowlist, built: b.next, known: b.known}
	if last != nil {
		res.last = last.digests
	}
	var port80 *routev3.RouteConfiguration
	for _, p := range g.Ports {
		res.Listeners = append(res.Listeners, b.portListener(p))
		if p.Routes != nil {
			rc := b.routeTable(p.Routes)
			res.Routes = append(res.Routes, rc)
			if g.Proxy != nil && p.Routes == g.Proxy.HTTP {
				port80 = rc
			}
		}
	}
	if g.Mesh != nil {
		res.Listeners = append(res.Listeners, b.meshListener(g.Mesh))
	}
	if g.Proxy != nil {
		res.Listeners = append(res.Listeners, b.proxyListener(g.Proxy))
		res.Routes = append(res.Routes, b.proxyRoutes(g.Proxy, port80))
	}
	res.clusterSecrets = []clusterSecrets{}
	res.onDemand = odSet{on: o.ODCDSCluster != "", core: map[string]bool{}}
	for _, c := range g.Clusters { // sorted by name
		cluster := b.cluster(c)
		res.Clusters = append(res.Clusters, cluster)
		if names := b.secretsOf(cluster); len(names) > 0 {
			res.clusterSecrets = append(res.clusterSecrets, clusterSecrets{cluster.Name, names})
		}
		if b.onDemand(c, cluster) {
			res.onDemand.n++
		} else {
			res.onDemand.core[cluster.Name] = true
		}
	}
	if res.onDemand.on {
		res.coreSecrets = map[string]bool{}
		for _, n := range res.secretNames(func(c string) bool { return !res.onDemand.has(c) }) {
			res.coreSecrets[n] = true
		}
	}
	return res
}

// odSet says which clusters of a Resources are discovered on demand: with
// ODCDS on, every one but the core ones (few: the fixed clusters), so a
// build records the few, not the 10,000.
type odSet struct {
	on   bool
	core map[string]bool
	n    int // how many clusters are on demand
}

// has reports whether cluster name (one of the Resources') is on demand.
func (s odSet) has(name string) bool { return s.on && !s.core[name] }

// onDemand reports whether cluster c of the model is discovered on demand:
// every listed host's cluster, when ODCDS is on. (None may be sent by ADS
// as well: a name Envoy looked up on demand and was answered absent must
// get its real cluster on the same stream.)
func (b *builder) onDemand(m *gateway.Cluster, _ *clusterv3.Cluster) bool {
	if b.o.ODCDSCluster == "" {
		return false
	}
	switch m.Kind {
	case gateway.ClusterStatic, gateway.ClusterStrictDNS, gateway.ClusterLogicalDNS:
		return true
	}
	return false
}

// OnDemand reports whether the cluster named name is discovered on demand
// (Options.ODCDSCluster) rather than sent to every gateway.
func (r *Resources) OnDemand(name string) bool {
	_, found := slices.BinarySearchFunc(r.Clusters, name, func(c *clusterv3.Cluster, n string) int { return strings.Compare(c.Name, n) })
	return found && r.onDemand.has(name)
}

// builder builds one model's resources. Its maps only share messages that
// are built alike many times (they are only read from then on); every
// decision is the model's.
type builder struct {
	o Options
	// last is the memo of the last publish; next records this build's.
	last, next *memo
	// known are the digests of the messages reused from last.
	known map[proto.Message]string
	// logs: see tcpLogs; dnsTypes: see dnsCluster; sniFilters: see
	// sniForwardFilter; downstream: see meshTLS.
	logs       map[string][]*accesslogv3.AccessLog
	dnsTypes   map[bool]*clusterv3.Cluster_ClusterType
	sniFilters map[uint32]*listenerv3.Filter
	downstream *corev3.TransportSocket
	odHTTP     *hcmv3.HttpFilter // see onDemandHTTPFilter
}

// secretsOf is secretsOf(c), remembered for a message reused from the
// last build.
func (b *builder) secretsOf(c *clusterv3.Cluster) []string {
	if c.GetTransportSocket() == nil {
		return nil
	}
	names, ok := b.last.secrets(c)
	if !ok {
		names = secretsOf(c)
	}
	b.next.keepSecrets(c, names)
	return names
}

// reuse returns the message built from node last time, when node is
// unchanged, else build's; either way it is recorded for the next memo.
func reuse[M proto.Message](b *builder, kind memoKind, name string, node any, build func() M) M {
	if m, digest, ok := b.last.get(kind, name, node); ok {
		msg := m.(M)
		b.known[msg] = digest
		b.next.put(kind, name, node, msg)
		return msg
	}
	msg := build()
	b.next.put(kind, name, node, msg)
	return msg
}
