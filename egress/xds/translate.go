package xds

import (
	"fmt"
	"sort"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/set_filter_state/v3"
	dfphttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	setfilterstatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/set_filter_state/v3"
	snidfpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/sni_dynamic_forward_proxy/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	luaspecifierv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/router/cluster_specifiers/lua/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
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
	// Warnings say what translation left out (an endpoint on one of the
	// gateway's own listeners, say), in words, sorted.
	Warnings []string

	// allowlist is the version of the allowlist translated.
	allowlist string
	// built and known come from translating with a clusterMemo: the
	// clusters by memo key, and the digests of those reused from it.
	built map[string]*clusterv3.Cluster
	known map[proto.Message]string
}

// SecretNames returns the SDS secrets the clusters refer to, sorted.
func (r *Resources) SecretNames() []string {
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
	for _, c := range r.Clusters {
		add(secretsOf(c))
	}
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			add(downstreamSecretsOf(fc.GetTransportSocket()))
		}
	}
	sort.Strings(out)
	return out
}

// Translate turns an allowlist into the gateway's Envoy resources. It is
// pure and deterministic. The result has one listener per service port
// (plus the always-on ports), each denying whatever no entry allows.
func Translate(a *serviceentry.Allowlist, opts Options) (*Resources, error) {
	return translate(a, opts, nil)
}

// translate is Translate reusing the host clusters of memo (may be nil)
// whose inputs did not change.
func translate(a *serviceentry.Allowlist, opts Options, memo *clusterMemo) (*Resources, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xds: %w", err)
	}
	if o.SecretNames == nil && needsSecrets(a) {
		return nil, fmt.Errorf("xds: a DestinationRule asks for TLS origination, but no SecretNames were given")
	}
	t := &translator{o: o, clusters: map[string]*clusterv3.Cluster{}, dynamicPorts: map[uint32]bool{}, logs: map[string][]*accesslogv3.AccessLog{},
		dnsTypes: map[bool]*clusterv3.Cluster_ClusterType{}, byHostPorts: map[uint32]bool{},
		memo: memo, built: map[string]*clusterv3.Cluster{}, known: map[proto.Message]string{},
		sniFilters: map[uint32]*listenerv3.Filter{}}
	plans := planPorts(a, o)
	t.listenerPorts = listenerPorts(plans, o)
	for _, p := range plans {
		if err := t.port(p); err != nil {
			return nil, err
		}
	}
	if o.Mesh != nil {
		t.meshListener(a, plans)
	}
	t.clusters[BlackholeCluster] = blackholeCluster(o)
	sort.Strings(t.warnings)
	res := &Resources{Listeners: t.listeners, Routes: t.routes, Warnings: t.warnings, allowlist: a.Version(), built: t.built, known: t.known}
	for _, c := range t.clusters {
		res.Clusters = append(res.Clusters, c)
	}
	sortClusters(res.Clusters)
	return res, nil
}

// needsSecrets reports whether any host port originates TLS.
func needsSecrets(a *serviceentry.Allowlist) bool {
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			if originates(hp) {
				return true
			}
		}
	}
	return false
}

// hostPort is one host allowed on one port.
type hostPort struct {
	host *serviceentry.Host
	hp   serviceentry.HostPort
}

// portPlan is everything the gateway serves on one service port.
type portPlan struct {
	number uint32
	http   []hostPort // by host name
	tls    []hostPort // by host name
	tcp    []hostPort // one per entry, by entry ref; addresses first
	// alwaysHTTP/alwaysTLS: the port is served even without entries.
	alwaysHTTP, alwaysTLS bool
}

func planPorts(a *serviceentry.Allowlist, o Options) []*portPlan {
	plans := map[uint32]*portPlan{}
	plan := func(n uint32) *portPlan {
		if p, ok := plans[n]; ok {
			return p
		}
		p := &portPlan{number: n}
		plans[n] = p
		return p
	}
	for _, n := range o.AlwaysHTTPPorts {
		plan(n).alwaysHTTP = true
	}
	for _, n := range o.AlwaysTLSPorts {
		plan(n).alwaysTLS = true
	}
	seenTCP := map[string]bool{}
	for _, h := range a.Hosts() { // sorted by name
		for _, hp := range h.Ports {
			p := plan(hp.Number)
			switch hp.Protocol.Class() {
			case serviceentry.ClassHTTP:
				p.http = append(p.http, hostPort{h, hp})
			case serviceentry.ClassTLS:
				p.tls = append(p.tls, hostPort{h, hp})
			default:
				key := fmt.Sprintf("%s|%d", hp.Entry.Ref, hp.Number)
				if !seenTCP[key] {
					seenTCP[key] = true
					p.tcp = append(p.tcp, hostPort{h, hp})
				}
			}
		}
	}
	out := make([]*portPlan, 0, len(plans))
	for _, p := range plans {
		sort.SliceStable(p.tcp, func(i, j int) bool {
			return p.tcp[i].hp.Entry.Ref.String() < p.tcp[j].hp.Entry.Ref.String()
		})
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

type translator struct {
	o            Options
	listeners    []*listenerv3.Listener
	routes       []*routev3.RouteConfiguration
	clusters     map[string]*clusterv3.Cluster
	dynamicPorts map[uint32]bool // HTTP ports whose routes forward dynamically
	logs         map[string][]*accesslogv3.AccessLog
	dnsTypes     map[bool]*clusterv3.Cluster_ClusterType // see dnsCluster
	byHostPorts  map[uint32]bool                         // HTTP ports whose routes go by Host (REGISTRY_ONLY)
	// See memoized: the last publish's clusters, the ones this translation
	// built or reused by key, and the digests of those reused.
	memo  *clusterMemo
	built map[string]*clusterv3.Cluster
	known map[proto.Message]string
	// sniFilters: see sniForwardFilter.
	sniFilters map[uint32]*listenerv3.Filter
	// listenerPorts are the ports the gateway's own addresses serve:
	// every listener's, and Options.OwnPorts.
	listenerPorts map[uint32]bool
	// warnings are what translation left out, for the Server's log.
	warnings []string
}

func (t *translator) warnf(format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf(format, args...))
}

// listenerPorts lists the ports the gateway listens on (service port plus
// offset), the mesh listener's and the other ports of its own addresses.
func listenerPorts(plans []*portPlan, o Options) map[uint32]bool {
	ports := map[uint32]bool{}
	for _, p := range plans {
		ports[p.number+o.PortOffset] = true
	}
	if o.Mesh != nil {
		ports[o.Mesh.Port+o.PortOffset] = true
	}
	for _, p := range o.OwnPorts {
		ports[p] = true
	}
	return ports
}

// tcpLogs is tcpAccessLog, built once per distinct configuration: with
// thousands of TLS hosts on a port every chain logs alike (the entry's
// name only goes into the optional file log), and marshalling the same
// logger config for each chain was a quarter of a large translation.
// Sharing the messages is safe: they are only read from here on.
func (t *translator) tcpLogs(port uint32, logs ...tcpLog) []*accesslogv3.AccessLog {
	key := make([]tcpLog, len(logs))
	copy(key, logs)
	if t.o.AccessLogPath == "" {
		for i := range key {
			key[i].serviceEntry = ""
		}
	}
	k := fmt.Sprint(port, key)
	if out, ok := t.logs[k]; ok {
		return out
	}
	out := tcpAccessLog(t.o, port, logs...)
	t.logs[k] = out
	return out
}

// dynamicCluster adds the dynamic forward proxy cluster name, built once
// per translation however many hosts use it.
func (t *translator) dynamicCluster(name string, http2 bool) string {
	if _, ok := t.clusters[name]; ok {
		return name
	}
	return t.addCluster(dynamicCluster(t.o, name, http2))
}

func (t *translator) addCluster(c *clusterv3.Cluster) string {
	t.clusters[c.Name] = c
	return c.Name
}

// wildcards returns the suffixes (".example.com") of the wildcard hosts
// among hps.
func wildcards(hps []hostPort) []string {
	var out []string
	for _, hp := range hps {
		if hp.host.Wildcard {
			out = append(out, strings.TrimPrefix(hp.host.Name, "*"))
		}
	}
	return out
}

// underWildcard reports whether an exact host also matches one of the
// port's wildcards. Such a host keeps a chain or virtual host of its own:
// Envoy prefers a wildcard server name or domain to the catch-all that
// routes by SNI or Host, and would send the host where the wildcard goes.
func underWildcard(hp hostPort, suffixes []string) bool {
	for _, sfx := range suffixes {
		if strings.HasSuffix(hp.host.Name, sfx) {
			return true
		}
	}
	return false
}

// dynamic reports whether the gateway must resolve the destination itself
// from the Host header or SNI: resolution NONE (validation refuses DNS
// wildcards without endpoints; wildcards with endpoints go to those).
func dynamic(hp hostPort) bool {
	return hp.hp.Entry.Resolution == serviceentry.ResolutionNone
}

func (t *translator) port(p *portPlan) error {
	var whole *hostPort
	var byAddress []hostPort
	for i := range p.tcp {
		if len(p.tcp[i].hp.Entry.Addresses) > 0 {
			byAddress = append(byAddress, p.tcp[i])
		} else if whole == nil {
			whole = &p.tcp[i]
		}
	}
	hasTLS := len(p.tls) > 0 || p.alwaysTLS
	// An always-on HTTP port yields to a TCP entry that takes the whole port.
	hasHTTP := len(p.http) > 0 || (p.alwaysHTTP && whole == nil)
	l := &listenerv3.Listener{
		Name:                          vocab.ListenerName(p.number),
		Address:                       socketAddress(t.o.ListenAddress, p.number+t.o.PortOffset),
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
		// A client of a server-first protocol sends nothing: let it through
		// to the plaintext chains instead of holding it for 15 s.
		ContinueOnListenerFiltersTimeout: true,
	}
	if hasTLS {
		l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
			Name:       "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
		})
	}
	if len(byAddress) > 0 {
		// Restores the destination of connections redirected to the
		// gateway (iptables REDIRECT/TPROXY), so chains can match it.
		l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
			Name:       "envoy.filters.listener.original_dst",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
		})
	}
	if len(p.tcp) > 0 && hasTLS {
		l.ListenerFiltersTimeout = durationpb.New(1e9)
	}

	// Under REGISTRY_ONLY exact hosts resolved by the gateway's clusters
	// need no chain of their own: the SNI names their cluster (sniChain).
	// The listener then does not grow or change with those hosts, and a
	// host added or removed is one cluster added or removed.
	bySNI := !t.o.Outbound.Forwards()
	wild := wildcards(p.tls)
	for _, hp := range p.tls {
		if bySNI && !dynamic(hp) && !hp.host.Wildcard && !underWildcard(hp, wild) {
			t.addCluster(t.passthroughCluster(hp))
			continue
		}
		l.FilterChains = append(l.FilterChains, t.tlsChain(p.number, hp))
	}
	for _, hp := range byAddress {
		if chain := t.tcpChain(p.number, hp); chain != nil {
			l.FilterChains = append(l.FilterChains, chain)
		}
	}
	switch {
	case hasTLS && bySNI:
		l.FilterChains = append(l.FilterChains, t.sniChain(p.number))
	case hasTLS:
		l.FilterChains = append(l.FilterChains, t.unknownSNIChain(p.number))
	}
	if hasHTTP {
		chain, route := t.httpChain(p, hasTLS)
		if whole != nil {
			// Compile refuses this; keep the translation total anyway.
			return fmt.Errorf("xds: port %d: HTTP entries and TCP entry %s without addresses cannot share a port", p.number, whole.hp.Entry.Ref)
		}
		l.FilterChains = append(l.FilterChains, chain)
		t.routes = append(t.routes, route)
	}
	if whole != nil {
		l.DefaultFilterChain = t.tcpChain(p.number, *whole)
	} else if !hasHTTP || hasTLS {
		l.DefaultFilterChain = t.denyChain(p.number)
	}
	t.listeners = append(t.listeners, l)
	return nil
}

// tlsChain passes TLS for one SNI through to the host, unterminated.
func (t *translator) tlsChain(port uint32, hp hostPort) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: hp.host.Name}.String()
	log := t.tcpLogs(port, tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictAllow, reason: vocab.ReasonAllowed, serviceEntry: hp.hp.Entry.Ref.String()})
	var filters []*listenerv3.Filter
	cluster := ""
	if dynamic(hp) {
		filters = append(filters, absoluteSNIFilter(), t.sniForwardFilter(hp.hp.UpstreamPort()))
		cluster = t.dynamicCluster(DynamicTLSCluster, false)
	} else {
		cluster = t.addCluster(t.passthroughCluster(hp))
	}
	filters = append(filters, tcpProxyFilter(name, cluster, log))
	return &listenerv3.FilterChain{
		Name: name,
		FilterChainMatch: &listenerv3.FilterChainMatch{
			ServerNames:       []string{hp.host.Name},
			TransportProtocol: "tls",
		},
		Filters: filters,
	}
}

// sniChain takes every TLS connection no wildcard or resolution-NONE chain
// claims (REGISTRY_ONLY): the SNI names the cluster,
// vocab.PassthroughClusterName(SNI, port). A listed host's cluster exists and the
// connection is passed through to it; for any other SNI (or none) there is
// no such cluster and tcp_proxy closes the connection at once. Only the
// port's passthrough clusters carry the name's prefix, so no SNI can select
// another port's or another kind of cluster.
func (t *translator) sniChain(port uint32) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: vocab.TargetBySNI}.String()
	// Which of the loggers writes depends on whether the SNI's cluster
	// exists: xds.cluster_name is only set once tcp_proxy found it.
	log := t.tcpLogs(port,
		tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictAllow, reason: vocab.ReasonAllowed, serviceEntry: clusterEntryField,
			filter: "connection.requested_server_name != '' && has(xds.cluster_name)"},
		tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictDeny, reason: vocab.ReasonNotInRegistry, filter: "connection.requested_server_name != '' && !has(xds.cluster_name)"},
		tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictDeny, reason: vocab.ReasonNoSNI, filter: "connection.requested_server_name == ''"})
	clusterBySNI := &listenerv3.Filter{
		Name: "envoy.filters.network.set_filter_state",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&setfilterstatev3.Config{
			OnNewConnection: []*filterstatev3.FilterStateValue{{
				Key: &filterstatev3.FilterStateValue_ObjectKey{ObjectKey: "envoy.tcp_proxy.cluster"},
				Value: &filterstatev3.FilterStateValue_FormatString{FormatString: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
						Specifier: &corev3.DataSource_InlineString{InlineString: vocab.PassthroughClusterName("%REQUESTED_SERVER_NAME%", port)},
					}},
				}},
			}},
		})},
	}
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
		// The blackhole is tcp_proxy's cluster only if the filter state
		// were missing; the filter always sets it.
		Filters: []*listenerv3.Filter{clusterBySNI, tcpProxyFilter(name, BlackholeCluster, log)},
	}
}

// unknownSNIChain takes every TLS connection whose SNI no entry allows
// under ALLOW_ANY and AUDIT: it is passed through to the SNI's host.
func (t *translator) unknownSNIChain(port uint32) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: vocab.TargetUnlisted}.String()
	match := &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
	verdict, reason := t.unlistedVerdict()
	log := t.tcpLogs(port,
		tcpLog{layer: vocab.LayerTLS, verdict: verdict, reason: reason, filter: "connection.requested_server_name != ''"},
		tcpLog{layer: vocab.LayerTLS, verdict: vocab.VerdictDeny, reason: vocab.ReasonNoSNI, filter: "connection.requested_server_name == ''"})
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: match, Filters: []*listenerv3.Filter{
		absoluteSNIFilter(),
		t.sniForwardFilter(port),
		tcpProxyFilter(name, t.dynamicCluster(DynamicTLSCluster, false), log),
	}}
}

// tcpChain forwards plaintext TCP of one entry: by destination address when
// the entry lists addresses, else every plaintext connection on the port.
// For an entry whose connections go to their original destination, the
// gateway's own addresses are cut out of the ranges (a connection made to
// the gateway directly has it as its original destination); nil when
// nothing is left.
func (t *translator) tcpChain(port uint32, hp hostPort) *listenerv3.FilterChain {
	e := hp.hp.Entry
	name := vocab.Chain{Kind: vocab.ChainTCP, Port: port, Target: e.Ref.String()}.String()
	match := &listenerv3.FilterChainMatch{}
	ranges := e.Addresses
	if e.Resolution == serviceentry.ResolutionNone && len(e.Addresses) > 0 {
		if ranges = withoutSelf(e.Addresses, t.o.Guard.Self); len(ranges) == 0 {
			t.warnf("ServiceEntry %s: every address it lists is the gateway's own; its port %d chain is left out", e.Ref, port)
			return nil
		}
	}
	for _, pfx := range ranges {
		match.PrefixRanges = append(match.PrefixRanges, &corev3.CidrRange{
			AddressPrefix: pfx.Masked().Addr().String(),
			PrefixLen:     wrapperspb.UInt32(uint32(pfx.Bits())),
		})
	}
	var cluster string
	verdict, reason := vocab.VerdictAllow, vocab.ReasonAllowed
	switch {
	case originationBlocked(hp.hp):
		// TLS was asked for and cannot be originated: refuse rather than
		// send the bytes in clear.
		cluster, verdict, reason = BlackholeCluster, vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed
	case e.Resolution == serviceentry.ResolutionNone && len(e.Addresses) > 0:
		cluster = t.addCluster(originalDstCluster(t.o))
	default:
		cluster = t.addCluster(t.hostCluster(hp.host.Name, hp.hp))
	}
	log := t.tcpLogs(port, tcpLog{layer: vocab.LayerTCP, verdict: verdict, reason: reason, serviceEntry: e.Ref.String()})
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: match, Filters: []*listenerv3.Filter{tcpProxyFilter(name, cluster, log)}}
}

// denyChain closes plaintext connections nothing claims, and logs them.
func (t *translator) denyChain(port uint32) *listenerv3.FilterChain {
	name := vocab.Chain{Kind: vocab.ChainTCP, Port: port, Target: vocab.TargetUnlisted}.String()
	reason := vocab.ReasonNotInRegistry
	if t.o.Outbound.Forwards() {
		// Without a Host or SNI the gateway cannot know where to go.
		reason = vocab.ReasonUnidentifiedTCP
	}
	log := t.tcpLogs(port, tcpLog{layer: vocab.LayerTCP, verdict: vocab.VerdictDeny, reason: reason})
	return &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{tcpProxyFilter(name, BlackholeCluster, log)}}
}

// httpChain routes plaintext HTTP by Host through the port's route table.
func (t *translator) httpChain(p *portPlan, afterTLS bool) (*listenerv3.FilterChain, *routev3.RouteConfiguration) {
	rc := &routev3.RouteConfiguration{Name: vocab.RouteName(p.number), ValidateClusters: wrapperspb.Bool(false)}
	// Under REGISTRY_ONLY exact hosts resolved by the gateway's clusters
	// need no virtual host of their own: the Host header names their
	// cluster (byHostVirtualHost). The route table then does not grow or
	// change with those hosts.
	byHost := !t.o.Outbound.Forwards()
	wild := wildcards(p.http)
	needDynamic := false
	for _, hp := range p.http {
		if originationBlocked(hp.hp) {
			rc.VirtualHosts = append(rc.VirtualHosts, t.blockedVirtualHost(p.number, hp))
			continue
		}
		var cluster, entry string
		var perRoute map[string]*anyType
		switch {
		case dynamic(hp):
			needDynamic = true
			cluster, entry = t.dynamicHTTPCluster(hp.hp.Protocol.UpstreamHTTP2()), hp.hp.Entry.Ref.String()
			perRoute = guardPerRoute(t.o, hp.hp.Entry.Addresses)
		case byHost && !hp.host.Wildcard && !underWildcard(hp, wild):
			t.addCluster(t.hostCluster(hp.host.Name, hp.hp))
			continue
		default:
			// The entry's name comes from the cluster's metadata.
			cluster = t.addCluster(t.hostCluster(hp.host.Name, hp.hp))
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    fmt.Sprintf("%s:%d", hp.host.Name, p.number),
			Domains: []string{hp.host.Name, fmt.Sprintf("%s:%d", hp.host.Name, p.number)},
			Routes: []*routev3.Route{{
				Name:                 "allow",
				Match:                prefixMatch("/"),
				Metadata:             routeMetadata(vocab.VerdictAllow, vocab.ReasonAllowed, entry),
				TypedPerFilterConfig: perRoute,
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					// Streams and long polls are legitimate egress; idle
					// timeouts bound them instead.
					Timeout: durationpb.New(0),
				}},
			}},
		})
	}
	if byHost {
		t.byHostPorts[p.number] = true
		rc.VirtualHosts = append(rc.VirtualHosts, byHostVirtualHost(p.number))
	} else {
		rc.VirtualHosts = append(rc.VirtualHosts, t.unlistedVirtualHost())
		needDynamic = true
	}

	if needDynamic {
		t.dynamicPorts[p.number] = true
		guardOnlyDynamicRoutes(rc)
	}
	hcm := t.httpConnectionManager(httpManager{port: p.number, statPrefix: httpChainStatPrefix(p.number)})
	chain := &listenerv3.FilterChain{
		Name: vocab.Chain{Kind: vocab.ChainHTTP, Port: p.number}.String(),
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if afterTLS {
		chain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	}
	return chain, rc
}

// dynamicForwardHTTPFilter resolves the Host of requests routed to the
// dynamic forward proxy clusters, and saves the address for the guard
// after it (guardHTTPFilter).
func dynamicForwardHTTPFilter(o Options) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name: "envoy.filters.http.dynamic_forward_proxy",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&dfphttpv3.FilterConfig{
			ImplementationSpecifier: &dfphttpv3.FilterConfig_DnsCacheConfig{DnsCacheConfig: dnsCache(o)},
			SaveUpstreamAddress:     true,
		})},
	}
}

// needsDynamicHTTP reports whether the port's route table forwards
// dynamically, so every HCM serving it needs the forward proxy filter.
func (t *translator) needsDynamicHTTP(port uint32) bool { return t.dynamicPorts[port] }

func (t *translator) dynamicHTTPCluster(http2 bool) string {
	name := DynamicHTTPCluster
	if http2 {
		name += "2"
	}
	return t.dynamicCluster(name, http2)
}

// blockedVirtualHost answers for a host whose DestinationRule asks for TLS
// origination the gateway cannot do: 502 with the reason, never the
// request in clear.
func (t *translator) blockedVirtualHost(port uint32, hp hostPort) *routev3.VirtualHost {
	body := fmt.Sprintf("egressd: DestinationRule %s asks for TLS to %s on port %d, which the gateway cannot originate: %s\n",
		hp.hp.TLS.Rule, hp.host.Name, port, hp.hp.TLS.Unsupported)
	return &routev3.VirtualHost{
		Name:    fmt.Sprintf("%s:%d", hp.host.Name, port),
		Domains: []string{hp.host.Name, fmt.Sprintf("%s:%d", hp.host.Name, port)},
		Routes: []*routev3.Route{{
			Name:     "tls_origination_unavailable",
			Match:    prefixMatch("/"),
			Metadata: routeMetadata(vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed, hp.hp.Entry.Ref.String()),
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 502,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
			}},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "x-egressd-denied", Value: string(vocab.ReasonTLSOriginationFailed)},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}},
	}
}

// byHostVirtualHost takes every request no other virtual host claims
// (REGISTRY_ONLY): the Host names the cluster, vocab.ClusterName(Host, port),
// chosen per request by a small Lua cluster specifier. The Host is
// lower-cased and may carry the service port. A listed host's cluster
// exists and the request goes to it; for any other Host there is no such
// cluster and the local reply of routeByHost answers 403.
func byHostVirtualHost(port uint32) *routev3.VirtualHost {
	lua := fmt.Sprintf(`function envoy_on_route(route_handle)
  local host = string.lower(route_handle:headers():get(":authority") or "")
  local p = string.match(host, ":(%%d+)$")
  if p ~= nil then
    if p ~= "%d" then return "" end
    host = string.sub(host, 1, #host - #p - 1)
  end
  return %q .. host
end
`, port, vocab.ClusterName("", port))
	return &routev3.VirtualHost{Name: "by_host", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Name:     "by_host",
		Match:    prefixMatch("/"),
		Metadata: routeMetadata(vocab.VerdictAllow, vocab.ReasonAllowed, ""),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_InlineClusterSpecifierPlugin{InlineClusterSpecifierPlugin: &routev3.ClusterSpecifierPlugin{
				Extension: &corev3.TypedExtensionConfig{
					Name: "envoy.router.cluster_specifier_plugin.lua",
					TypedConfig: mustAny(&luaspecifierv3.LuaConfig{
						SourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: lua}},
						// A script error denies too: no such cluster.
						DefaultCluster: vocab.ClusterName("", port),
					}),
				},
			}},
			Timeout: durationpb.New(0),
		}},
	}}}
}

// routeByHost completes an HCM of a port whose route table routes by Host:
// a request whose Host names no cluster is answered 403, as an unlisted
// host is under REGISTRY_ONLY.
func (t *translator) routeByHost(hcm *hcmv3.HttpConnectionManager, port uint32) {
	if !t.byHostPorts[port] {
		return
	}
	body := fmt.Sprintf("egressd: host %%REQ(:AUTHORITY)%% is not in the egress registry (outbound policy %s): no ServiceEntry allows it on port %d\n",
		serviceentry.RegistryOnly, port)
	nc := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NC"}},
	}}
	hcm.LocalReplyConfig = &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{denialReply(nc, vocab.ReasonNotInRegistry, body)}}
}

// denialReply turns the local replies filter matches into a 403 whose
// body (a format string) and x-egressd-denied header say why.
func denialReply(filter *accesslogv3.AccessLogFilter, reason vocab.Reason, body string) *hcmv3.ResponseMapper {
	return &hcmv3.ResponseMapper{
		Filter:     filter,
		StatusCode: wrapperspb.UInt32(403),
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}},
			ContentType: "text/plain; charset=utf-8",
		},
		HeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-egressd-denied", Value: string(reason)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}

// unlistedVerdict is how traffic to unlisted destinations is recorded when
// the outbound mode forwards it: allowed under ALLOW_ANY, audit-deny (what
// REGISTRY_ONLY would refuse) under AUDIT.
func (t *translator) unlistedVerdict() (vocab.Verdict, vocab.Reason) {
	if t.o.Outbound == serviceentry.Audit {
		return vocab.VerdictAuditDeny, vocab.ReasonNotInRegistry
	}
	return vocab.VerdictAllow, vocab.ReasonAllowAny
}

// unlistedVirtualHost takes every Host no entry allows under ALLOW_ANY and
// AUDIT: it is forwarded dynamically. (Under REGISTRY_ONLY the port routes
// by Host and routeByHost answers 403.)
func (t *translator) unlistedVirtualHost() *routev3.VirtualHost {
	verdict, reason := t.unlistedVerdict()
	return &routev3.VirtualHost{Name: "unlisted", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Name:     "unlisted",
		Match:    prefixMatch("/"),
		Metadata: routeMetadata(verdict, reason, ""),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: t.dynamicHTTPCluster(false)},
			Timeout:          durationpb.New(0),
		}},
	}}}
}

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func routeMetadata(verdict vocab.Verdict, reason vocab.Reason, serviceEntry string) *corev3.Metadata {
	fields := map[string]*structpb.Value{
		"verdict": structpb.NewStringValue(string(verdict)),
		"reason":  structpb.NewStringValue(string(reason)),
	}
	if serviceEntry != "" {
		fields["serviceentry"] = structpb.NewStringValue(serviceEntry)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{routeMetadataKey: {Fields: fields}}}
}

// sniForwardFilter resolves the SNI and connects to port. Chains to the
// same port share one (they only read it).
func (t *translator) sniForwardFilter(port uint32) *listenerv3.Filter {
	if f, ok := t.sniFilters[port]; ok {
		return f
	}
	f := sniForwardFilter(t.o, port)
	t.sniFilters[port] = f
	return f
}

func sniForwardFilter(o Options, port uint32) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: "envoy.filters.network.sni_dynamic_forward_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&snidfpv3.FilterConfig{
			DnsCacheConfig: dnsCache(o),
			PortSpecifier:  &snidfpv3.FilterConfig_PortValue{PortValue: port},
		})},
	}
}

func tcpProxyFilter(statPrefix, cluster string, logs []*accesslogv3.AccessLog) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
			StatPrefix:       statPrefix,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
			AccessLog:        logs,
		})},
	}
}
