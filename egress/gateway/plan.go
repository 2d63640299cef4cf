package gateway

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Fixed cluster names.
const (
	// BlackholeCluster has no endpoints: deny chains proxy to it, so a
	// denied connection is closed at once and still access-logged.
	BlackholeCluster = "egressd_blackhole"
	// DynamicHTTPCluster resolves the Host of HTTP requests at the gateway
	// (wildcard hosts, resolution NONE, ALLOW_ANY); DynamicHTTP2Cluster
	// the same over HTTP/2 upstream.
	DynamicHTTPCluster  = "egressd_dynamic_http"
	DynamicHTTP2Cluster = DynamicHTTPCluster + "2"
	// DynamicTLSCluster resolves the SNI of TLS connections at the gateway.
	DynamicTLSCluster = "egressd_dynamic_tls"
	// OriginalDstCluster connects to the connection's original destination
	// (TCP entries with resolution NONE and addresses).
	OriginalDstCluster = "egressd_original_dst"
)

// Plan turns an allowlist into the gateway model. It is pure and
// deterministic: equal allowlists and options give equal models. There is
// one Port per service port any host uses (plus the always-on ports),
// each refusing what no entry allows.
func Plan(a *serviceentry.Allowlist, opts Options) (*Gateway, error) {
	return PlanWith(a, opts, nil)
}

// PlanWith is Plan reusing the ports of the last Plan with cache (may be
// nil) whose hosts are unchanged, and leaving this one's in it. The model
// is equal to Plan's; reused parts are shared with the last model, so
// neither may be changed.
func PlanWith(a *serviceentry.Allowlist, opts Options, cache *Cache) (*Gateway, error) {
	o, err := opts.check()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if o.SecretNames == nil && needsSecrets(a) {
		return nil, fmt.Errorf("gateway: a DestinationRule asks for TLS origination, but no SecretNames were given")
	}
	hosts := hostsByPort(a, o)
	numbers := make([]uint32, len(hosts))
	for i, ph := range hosts {
		numbers[i] = ph.number
	}
	listening := o.listenerPorts(numbers)
	last := cache.reusable(o, listening)
	p := &planner{o: o, a: a, listening: listening, last: last}
	p.next = make(map[uint32]*portPlan, len(hosts))
	g := &Gateway{Allowlist: a.Version(), Outbound: o.Outbound}
	var meshChains []*Chain
	lists := make([][]*Cluster, 0, len(hosts)+1)
	for _, ph := range hosts {
		pp, ok := p.last[ph.number]
		switch {
		case ok && samePortHosts(pp.in, ph):
			p.warnings = append(p.warnings, pp.warnings...)
		default:
			if pp, err = p.planPort(ph, pp); err != nil {
				return nil, err
			}
		}
		p.next[ph.number] = pp
		g.Ports = append(g.Ports, pp.port)
		meshChains = append(meshChains, pp.mesh...)
		lists = append(lists, pp.clusters)
	}
	cache.keep(o, p.listening, p.next)
	if o.MeshPort != 0 {
		g.Mesh = p.mesh(a, meshChains)
	}
	g.NotApplied = notApplied(a, o.Scope)
	lists = append(lists, []*Cluster{{Name: BlackholeCluster, Kind: ClusterBlackhole}})
	g.Clusters = mergeClusters(lists)
	if o.ProxyPort != 0 {
		g.Proxy = p.proxy(g, o.ProxyPort) // after the clusters: it names some
	}
	sort.Strings(p.warnings)
	g.Warnings = p.warnings
	return g, nil
}

// planPort plans one port: its listener and its mesh chains, with the
// clusters they name and the warnings. last is the port's last plan (nil
// if none), whose upstream clusters are reused where their inputs are
// unchanged.
func (p *planner) planPort(ph *portHosts, last *portPlan) (*portPlan, error) {
	p.clusters, p.order = map[string]*Cluster{}, nil
	if last != nil {
		p.clusters = make(map[string]*Cluster, len(last.clusters))
		p.order = make([]*Cluster, 0, len(last.clusters))
	}
	p.lastUp = nil
	if last != nil {
		p.lastUp = last.upstreams
	}
	pp := &portPlan{in: ph, upstreams: make(map[string]*upstreamPlan, len(p.lastUp))}
	p.nextUp = pp.upstreams
	warned := len(p.warnings)
	port, err := p.port(ph)
	if err != nil {
		return nil, err
	}
	pp.port = port
	if p.o.MeshPort != 0 {
		pp.mesh = p.meshChains(ph, port)
	}
	pp.clusters = p.order
	slices.SortFunc(pp.clusters, func(x, y *Cluster) int { return strings.Compare(x.Name, y.Name) })
	pp.warnings = slices.Clone(p.warnings[warned:])
	return pp, nil
}

// mergeClusters merges lists sorted by name into one, each name once: of
// equal names (the fixed clusters several ports name, built alike) the
// first list's is kept.
func mergeClusters(lists [][]*Cluster) []*Cluster {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]*Cluster, 0, n)
	// heads is a min-heap of list indexes by their next name (then index).
	heads := make([]int, 0, len(lists))
	pos := make([]int, len(lists))
	less := func(a, b int) bool {
		x, y := lists[a][pos[a]].Name, lists[b][pos[b]].Name
		return x < y || x == y && a < b
	}
	down := func(i int) {
		for {
			m, l, r := i, 2*i+1, 2*i+2
			if l < len(heads) && less(heads[l], heads[m]) {
				m = l
			}
			if r < len(heads) && less(heads[r], heads[m]) {
				m = r
			}
			if m == i {
				return
			}
			heads[i], heads[m] = heads[m], heads[i]
			i = m
		}
	}
	for i, l := range lists {
		if len(l) > 0 {
			heads = append(heads, i)
		}
	}
	for i := len(heads)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(heads) > 0 {
		i := heads[0]
		c := lists[i][pos[i]]
		if len(out) == 0 || out[len(out)-1].Name != c.Name {
			out = append(out, c)
		}
		pos[i]++
		if pos[i] == len(lists[i]) {
			heads[0] = heads[len(heads)-1]
			heads = heads[:len(heads)-1]
		}
		down(0)
	}
	return out
}

// needsSecrets reports whether any host port originates TLS.
func needsSecrets(a *serviceentry.Allowlist) bool {
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			if originates(hp) || originates(hp.Target()) {
				return true
			}
		}
	}
	return false
}

func originates(hp serviceentry.HostPort) bool { return hp.TLS != nil && hp.TLS.Unsupported == "" }

// originationBlocked reports whether hp asks for TLS origination the
// gateway cannot do: its traffic is refused, never sent in clear.
func originationBlocked(hp serviceentry.HostPort) bool {
	return hp.TLS != nil && hp.TLS.Unsupported != ""
}

// hostPort is one host allowed on one port.
type hostPort struct {
	host *serviceentry.Host
	hp   serviceentry.HostPort
	// entry is the digest of hp's entry (routeEntry of its route's);
	// sniPort the host's plainSNIPort.
	entry, routeEntry string
	sniPort           uint32
}

// target is where the gateway connects for hp: its route's destination
// (a VirtualService), else hp itself.
func (hp hostPort) target() hostPort {
	r := hp.hp.Route
	if r == nil {
		return hp
	}
	return hostPort{host: &serviceentry.Host{Name: r.Host}, hp: hp.hp.Target(), entry: hp.routeEntry}
}

// portHosts is everything the gateway serves on one service port.
type portHosts struct {
	number uint32
	http   []hostPort // by host name
	tls    []hostPort // by host name
	tcp    []hostPort // one per entry, by entry ref
	// alwaysHTTP/alwaysTLS: the port is served even without entries.
	alwaysHTTP, alwaysTLS bool
}

// hostsByPort sorts the allowlist's host ports by service port and
// protocol class, by port number.
func hostsByPort(a *serviceentry.Allowlist, o Options) []*portHosts {
	byNumber := map[uint32]*portHosts{}
	port := func(n uint32) *portHosts {
		if p, ok := byNumber[n]; ok {
			return p
		}
		p := &portHosts{number: n}
		byNumber[n] = p
		return p
	}
	for _, n := range o.AlwaysHTTPPorts {
		port(n).alwaysHTTP = true
	}
	for _, n := range o.AlwaysTLSPorts {
		port(n).alwaysTLS = true
	}
	type entryPort struct {
		namespace, name string
		number          uint32
	}
	seenTCP := map[entryPort]bool{}
	for _, h := range a.Hosts() { // sorted by name
		var sni uint32
		if o.MeshPort != 0 { // only the mesh listener reads it
			sni = plainSNIPort(h)
		}
		for _, hp := range h.Ports {
			p := port(hp.Number)
			x := hostPort{host: h, hp: hp, entry: a.EntryDigest(hp.Entry), sniPort: sni}
			if hp.Route != nil {
				x.routeEntry = a.EntryDigest(hp.Route.Entry)
			}
			switch hp.Protocol.Class() {
			case serviceentry.ClassHTTP:
				p.http = append(p.http, x)
			case serviceentry.ClassTLS:
				p.tls = append(p.tls, x)
			default:
				key := entryPort{hp.Entry.Ref.Namespace, hp.Entry.Ref.Name, hp.Number}
				if !seenTCP[key] {
					seenTCP[key] = true
					p.tcp = append(p.tcp, x)
				}
			}
		}
	}
	out := make([]*portHosts, 0, len(byNumber))
	for _, p := range byNumber {
		if len(p.tcp) > 1 {
			refs := make(map[*serviceentry.Entry]string, len(p.tcp))
			for _, x := range p.tcp {
				refs[x.hp.Entry] = x.hp.Entry.Ref.String()
			}
			slices.SortStableFunc(p.tcp, func(x, y hostPort) int { return strings.Compare(refs[x.hp.Entry], refs[y.hp.Entry]) })
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

// planner holds what one Plan collects: the clusters named so far and
// what was left out.
type planner struct {
	o Options
	a *serviceentry.Allowlist
	// clusters are the clusters the port being planned names (every
	// cluster name but the fixed ones carries its port); order lists them
	// as added (hosts come sorted, so mostly sorted already).
	clusters map[string]*Cluster
	order    []*Cluster
	// last are the cache's last ports (none without one), next this
	// plan's; lastUp and nextUp the upstream clusters of the port being
	// planned, in its last plan and in this one.
	last, next     map[uint32]*portPlan
	lastUp, nextUp map[string]*upstreamPlan
	// listening are the ports the gateway's own addresses serve.
	listening map[uint32]bool
	warnings  []string
}

func (p *planner) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// add records c unless a cluster of its name is already there, and
// returns its name.
func (p *planner) add(c *Cluster) string {
	if _, ok := p.clusters[c.Name]; !ok {
		p.clusters[c.Name] = c
		p.order = append(p.order, c)
	}
	return c.Name
}

// known reports whether the port being planned names a cluster of that
// name already.
func (p *planner) known(name string) bool {
	_, ok := p.clusters[name]
	return ok
}

// wildcardSet is the suffixes (".example.com") of a port's wildcard hosts.
type wildcardSet map[string]bool

// wildcards returns the suffixes of the wildcard hosts among hps.
func wildcards(hps []hostPort) wildcardSet {
	out := wildcardSet{}
	for _, hp := range hps {
		if hp.host.Wildcard {
			out[strings.TrimPrefix(hp.host.Name, "*")] = true
		}
	}
	return out
}

// underWildcard reports whether an exact host also matches one of the
// port's wildcards. Such a host keeps a chain or virtual host of its own:
// Envoy prefers a wildcard server name or domain to the catch-all that
// routes by SNI or Host, and would send the host where the wildcard goes.
// It looks up each of the host's suffixes (".b.example.com",
// ".example.com", ".com"): as many lookups as the host has labels, however
// many wildcards the port has.
func underWildcard(hp hostPort, wild wildcardSet) bool {
	if len(wild) == 0 {
		return false
	}
	name := hp.host.Name
	for i := strings.IndexByte(name, '.'); i >= 0; {
		if wild[name[i:]] {
			return true
		}
		next := strings.IndexByte(name[i+1:], '.')
		if next < 0 {
			break
		}
		i += next + 1
	}
	return false
}

// dynamic reports whether the gateway must resolve the destination itself
// from the Host header or SNI: resolution NONE (validation refuses DNS
// wildcards without endpoints; wildcards with endpoints go to those).
func dynamic(hp hostPort) bool {
	return hp.hp.Entry.Resolution == serviceentry.ResolutionNone
}

// foundByName reports whether a host needs no chain or virtual host of its
// own: under REGISTRY_ONLY an exact host resolved by its cluster is found
// by the SNI or Host naming that cluster, so the listener and the route
// table do not grow or change with such hosts (a host added or removed is
// one cluster added or removed). Wildcards, hosts under a wildcard and
// hosts the gateway resolves per connection keep their own.
func (p *planner) foundByName(hp hostPort, wild wildcardSet) bool {
	return !p.o.Outbound.Forwards() && hp.hp.Route == nil && !dynamic(hp) && !hp.host.Wildcard && !underWildcard(hp, wild)
}

// unlistedVerdict is how traffic to unlisted destinations is recorded when
// the outbound mode forwards it: allowed under ALLOW_ANY, audit-deny (what
// REGISTRY_ONLY would refuse) under AUDIT.
func (p *planner) unlistedVerdict() (vocab.Verdict, vocab.Reason) {
	if p.o.Outbound == serviceentry.Audit {
		return vocab.VerdictAuditDeny, vocab.ReasonNotInRegistry
	}
	return vocab.VerdictAllow, vocab.ReasonAllowAny
}

// notApplied lists the policies of a that scope leaves out, by namespace
// and name.
func notApplied(a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) []serviceentry.NotApplied {
	_, policies := a.AuthorizationPoliciesFor(scope)
	_, peers := a.PeerAuthenticationsFor(scope)
	return append(policies, peers...)
}
