package gateway

import (
	"fmt"
	"net/netip"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// port plans the listener of one service port. Its chains, in order: a
// chain per TLS host that needs one, a chain per TCP entry with addresses,
// the TLS catch-all (by SNI, or forwarding the unlisted), the plaintext
// HTTP chain; the default chain is a TCP entry that takes the whole port,
// else the deny chain.
func (p *planner) port(ph *portHosts) (*Port, error) {
	n := ph.number
	var whole *hostPort
	var byAddress []hostPort
	for i := range ph.tcp {
		if len(ph.tcp[i].hp.Entry.Addresses) > 0 {
			byAddress = append(byAddress, ph.tcp[i])
		} else if whole == nil {
			whole = &ph.tcp[i]
		}
	}
	hasTLS := len(ph.tls) > 0 || ph.alwaysTLS
	// An always-on HTTP port yields to a TCP entry that takes the whole port.
	hasHTTP := len(ph.http) > 0 || (ph.alwaysHTTP && whole == nil)
	if hasHTTP && whole != nil {
		// Compile refuses this; keep planning total anyway.
		return nil, fmt.Errorf("gateway: port %d: HTTP entries and TCP entry %s without addresses cannot share a port", n, whole.hp.Entry.Ref)
	}
	port := &Port{
		Number:              n,
		Listen:              n + p.o.PortOffset,
		InspectTLS:          hasTLS,
		OriginalDestination: len(byAddress) > 0,
		BoundedInspection:   len(ph.tcp) > 0 && hasTLS,
	}
	wild := wildcards(ph.tls)
	for _, hp := range ph.tls {
		if p.foundByName(hp, wild) {
			p.passthroughCluster(hp)
			continue
		}
		port.Chains = append(port.Chains, p.tlsChain(n, hp))
	}
	// Under REGISTRY_ONLY, on a port without HTTP or a TCP entry for the
	// whole port, the entries' single addresses need no chain each: the
	// destination address names its cluster (addressChain), as an SNI
	// does. Ranges, original-destination entries and refused origination
	// keep their own chains.
	byName := !hasHTTP && whole == nil && !p.o.Outbound.Forwards()
	named := false
	for _, hp := range byAddress {
		if byName && p.addressClusters(n, hp) {
			named = true
			continue
		}
		if chain := p.tcpChain(n, hp); chain != nil {
			port.Chains = append(port.Chains, chain)
		}
	}
	switch {
	case hasTLS && !p.o.Outbound.Forwards():
		port.Chains = append(port.Chains, p.sniChain(n))
	case hasTLS:
		port.Chains = append(port.Chains, p.unlistedTLSChain(n))
	}
	if hasHTTP {
		port.Routes = p.routes(ph)
		port.Chains = append(port.Chains, httpChain(port.Routes, n, hasTLS))
	}
	switch {
	case whole != nil:
		port.Default = p.tcpChain(n, *whole)
	case named:
		port.Default = addressChain(n)
	case !hasHTTP || hasTLS:
		port.Default = p.denyChain(n)
	}
	return port, nil
}

// addressClusters plans, for a TCP entry whose addresses are all single
// IPs (and whose traffic goes to its own endpoints, in clear or with TLS
// the gateway can originate), a cluster per address named after it
// (vocab.AddressClusterName) and reports true; false for any other entry,
// which keeps a chain of its own. An address that is one of the gateway's
// own is left out.
func (p *planner) addressClusters(port uint32, hp hostPort) bool {
	e := hp.hp.Entry
	if e.Resolution == serviceentry.ResolutionNone || originationBlocked(hp.hp) {
		return false
	}
	for _, a := range e.Addresses {
		if !a.IsSingleIP() {
			return false
		}
	}
	for _, a := range e.Addresses {
		name := vocab.AddressClusterName(a.Addr().Unmap().String(), port)
		if p.known(name) {
			continue // two entries name the address: the first (by entry) has it
		}
		p.add(p.upstream(name, hp.host.Name, hp.hp))
	}
	return true
}

// addressChain takes every plaintext connection of a TCP port whose
// entries' addresses name their clusters: the destination address names
// the cluster, vocab.AddressClusterName(address, port). A listed address's
// cluster exists and the connection is proxied to it; for any other
// address there is no such cluster and the connection is closed at once.
func addressChain(port uint32) *Chain {
	return &Chain{
		Name: vocab.Chain{Kind: vocab.ChainTCP, Port: port, Target: vocab.TargetByAddress}.String(),
		Port: port,
		Forward: &Forward{Cluster: BlackholeCluster, ClusterByAddress: true, Logs: []Log{
			{Layer: vocab.LayerTCP, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, ServiceEntryFromCluster: true, When: WhenAddressFound},
			{Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, When: WhenAddressAbsent},
		}},
	}
}

// tlsChain passes TLS for one SNI through to the host, unterminated:
// resolved per connection for resolution NONE, else to its cluster.
func (p *planner) tlsChain(port uint32, hp hostPort) *Chain {
	f := &Forward{Logs: []Log{{Layer: vocab.LayerTLS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, ServiceEntry: hp.hp.Entry.Ref.String()}}}
	switch {
	case hp.hp.Route != nil:
		// A VirtualService sends this SNI to another host: passed
		// through, unterminated, to that host's cluster.
		t := hp.target()
		f.Cluster = p.passthroughCluster(t)
		f.Logs[0].ServiceEntry = t.hp.Entry.Ref.String()
	case dynamic(hp):
		f.Cluster, f.ResolveSNIPort = p.add(dynamicCluster(DynamicTLSCluster, false)), hp.hp.UpstreamPort()
	default:
		f.Cluster = p.passthroughCluster(hp)
	}
	return &Chain{
		Name:    vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: hp.host.Name}.String(),
		Port:    port,
		Match:   Match{ServerNames: []string{hp.host.Name}, Transport: TransportTLS},
		Forward: f,
	}
}

// sniChain takes every TLS connection no chain of its own claims
// (REGISTRY_ONLY): the SNI names the cluster, vocab.PassthroughClusterName
// (SNI, port). A listed host's cluster exists and the connection is passed
// through to it; for any other SNI (or none) there is no such cluster and
// the connection is closed at once. Only the port's passthrough clusters
// carry the name's prefix, so no SNI can select another port's or another
// kind of cluster. Which line is logged depends on whether the cluster
// exists.
func (p *planner) sniChain(port uint32) *Chain {
	return &Chain{
		Name:  vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: vocab.TargetBySNI}.String(),
		Port:  port,
		Match: Match{Transport: TransportTLS},
		Forward: &Forward{Cluster: BlackholeCluster, ClusterBySNI: true, Logs: []Log{
			{Layer: vocab.LayerTLS, Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed, ServiceEntryFromCluster: true, When: WhenClusterFound},
			{Layer: vocab.LayerTLS, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNotInRegistry, When: WhenClusterAbsent},
			{Layer: vocab.LayerTLS, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNoSNI, When: WhenNoSNI},
		}},
	}
}

// unlistedTLSChain takes every TLS connection whose SNI no entry allows
// under ALLOW_ANY and AUDIT: it is passed through to the SNI's host.
func (p *planner) unlistedTLSChain(port uint32) *Chain {
	verdict, reason := p.unlistedVerdict()
	return &Chain{
		Name:  vocab.Chain{Kind: vocab.ChainTLS, Port: port, Target: vocab.TargetUnlisted}.String(),
		Port:  port,
		Match: Match{Transport: TransportTLS},
		Forward: &Forward{Cluster: p.add(dynamicCluster(DynamicTLSCluster, false)), ResolveSNIPort: port, Logs: []Log{
			{Layer: vocab.LayerTLS, Verdict: verdict, Reason: reason, When: WhenSNI},
			{Layer: vocab.LayerTLS, Verdict: vocab.VerdictDeny, Reason: vocab.ReasonNoSNI, When: WhenNoSNI},
		}},
	}
}

// tcpChain forwards plaintext TCP of one entry: by destination address when
// the entry lists addresses, else every plaintext connection on the port.
// For an entry whose connections go to their original destination, the
// gateway's own addresses are cut out of the ranges (a connection made to
// the gateway directly has it as its original destination); nil when
// nothing is left.
func (p *planner) tcpChain(port uint32, hp hostPort) *Chain {
	e := hp.hp.Entry
	ranges := e.Addresses
	passThrough := e.Resolution == serviceentry.ResolutionNone && len(e.Addresses) > 0
	if passThrough {
		if ranges = withoutSelf(e.Addresses, p.o.Self); len(ranges) == 0 {
			p.warnf("ServiceEntry %s: every address it lists is the gateway's own; its port %d chain is left out", e.Ref, port)
			return nil
		}
	}
	f := &Forward{}
	verdict, reason := vocab.VerdictAllow, vocab.ReasonAllowed
	switch {
	case originationBlocked(hp.hp):
		// TLS was asked for and cannot be originated: refuse rather than
		// send the bytes in clear.
		f.Cluster, verdict, reason = BlackholeCluster, vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed
	case passThrough:
		f.Cluster = p.add(&Cluster{Name: OriginalDstCluster, Kind: ClusterOriginalDst})
	default:
		f.Cluster = p.hostCluster(hp.host.Name, hp.hp)
	}
	f.Logs = []Log{{Layer: vocab.LayerTCP, Verdict: verdict, Reason: reason, ServiceEntry: e.Ref.String()}}
	masked := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		masked[i] = r.Masked()
	}
	return &Chain{
		Name:    vocab.Chain{Kind: vocab.ChainTCP, Port: port, Target: e.Ref.String()}.String(),
		Port:    port,
		Match:   Match{Destinations: masked},
		Forward: f,
	}
}

// withoutSelf is ranges minus the gateway's own addresses.
func withoutSelf(ranges, self []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range ranges {
		out = append(out, netguard.Subtract(r, self)...)
	}
	return out
}

// denyChain closes plaintext connections nothing claims, and logs them:
// not_in_registry, or unidentified_tcp when the outbound mode would
// forward them but without a Host or SNI the gateway cannot know where.
func (p *planner) denyChain(port uint32) *Chain {
	reason := vocab.ReasonNotInRegistry
	if p.o.Outbound.Forwards() {
		reason = vocab.ReasonUnidentifiedTCP
	}
	return &Chain{
		Name:    vocab.Chain{Kind: vocab.ChainTCP, Port: port, Target: vocab.TargetUnlisted}.String(),
		Port:    port,
		Forward: &Forward{Cluster: BlackholeCluster, Logs: []Log{{Layer: vocab.LayerTCP, Verdict: vocab.VerdictDeny, Reason: reason}}},
	}
}

// httpChain serves plaintext HTTP through the port's route table; behind
// TLS chains it takes plaintext only.
func httpChain(r *Routes, port uint32, afterTLS bool) *Chain {
	c := &Chain{
		Name: vocab.Chain{Kind: vocab.ChainHTTP, Port: port}.String(),
		Port: port,
		HTTP: &HTTP{Routes: r.Name, StatPrefix: fmt.Sprintf("egress_http_%d", port), Dynamic: r.Dynamic, ByHost: r.ByHost},
	}
	if afterTLS {
		c.Match.Transport = TransportPlaintext
	}
	return c
}
