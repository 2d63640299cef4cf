package gateway

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// hostCluster plans the cluster of one exact host on a service port and
// returns its name.
func (p *planner) hostCluster(host string, hp serviceentry.HostPort) string {
	name := vocab.ClusterName(host, hp.Number)
	if p.known(name) {
		return name
	}
	return p.add(p.upstream(name, host, hp))
}

// passthroughCluster plans the cluster of a TLS host the gateway passes
// through (vocab.PassthroughClusterName) and returns its name.
func (p *planner) passthroughCluster(hp hostPort) string {
	name := vocab.PassthroughClusterName(hp.host.Name, hp.hp.Number)
	if p.known(name) {
		return name
	}
	return p.add(p.upstream(name, hp.host.Name, hp.hp))
}

// upstream is the cluster of host on one of its ports, from its entry's
// resolution and endpoints. A STATIC endpoint on one of the gateway's own
// listeners is left out (a forwarding loop), with a warning. The last
// plan's cluster of that name is reused when it was planned from the same
// host, port, entry content and origination.
func (p *planner) upstream(name, host string, hp serviceentry.HostPort) *Cluster {
	entry := p.a.EntryDigest(hp.Entry)
	if u, ok := p.lastUp[name]; ok && u.reuses(host, hp, entry) {
		p.warnings = append(p.warnings, u.warnings...)
		p.nextUp[name] = u
		return u.cluster
	}
	warned := len(p.warnings)
	c := p.planUpstream(name, host, hp)
	p.nextUp[name] = &upstreamPlan{host: host, port: hp.Port, entry: entry, tls: hp.TLS, cluster: c,
		warnings: slices.Clone(p.warnings[warned:])}
	return c
}

// planUpstream is upstream without the cache.
func (p *planner) planUpstream(name, host string, hp serviceentry.HostPort) *Cluster {
	e := hp.Entry
	c := &Cluster{Name: name, HTTP2: hp.Protocol.UpstreamHTTP2(), ServiceEntry: e.Ref.String()}
	switch e.Resolution {
	case serviceentry.ResolutionStatic:
		c.Kind = ClusterStatic
		for _, ep := range e.Endpoints {
			port := ep.PortFor(hp.Port)
			if p.selfSocket(ep.Address, port) {
				p.warnf("ServiceEntry %s: endpoint %s:%d is one of the gateway's own listeners; it is left out of %s (a forwarding loop)", e.Ref, ep.Address, port, name)
				continue
			}
			c.Endpoints = append(c.Endpoints, Endpoint{Address: ep.Address, Port: port, Weight: ep.Weight})
		}
	case serviceentry.ResolutionDNSRoundRobin:
		// One address at a time, re-resolved for new connections; Envoy
		// allows exactly one endpoint here.
		c.Kind = ClusterLogicalDNS
		if len(e.Endpoints) > 0 {
			c.Endpoints = []Endpoint{{Address: absolute(e.Endpoints[0].Address), Port: e.Endpoints[0].PortFor(hp.Port)}}
		} else {
			c.Endpoints = []Endpoint{{Address: absolute(host), Port: hp.UpstreamPort()}}
		}
	default:
		// DNS, and NONE for TCP entries without addresses (the gateway has
		// no original destination to pass through to, so it resolves the
		// host): every resolved address is in the pool.
		c.Kind = ClusterStrictDNS
		for _, ep := range e.Endpoints {
			c.Endpoints = append(c.Endpoints, Endpoint{Address: absolute(ep.Address), Port: ep.PortFor(hp.Port), Weight: ep.Weight})
		}
		if len(e.Endpoints) == 0 {
			c.Endpoints = []Endpoint{{Address: absolute(host), Port: hp.UpstreamPort()}}
		}
	}
	if originates(hp) {
		c.TLS = p.origination(hp)
	}
	return c
}

// origination is the TLS a DestinationRule asks the gateway to open.
func (p *planner) origination(hp serviceentry.HostPort) *Origination {
	t := hp.TLS
	client, ca := p.o.SecretNames(t)
	o := &Origination{Rule: t.Rule.String(), SNI: t.SNI, Mode: t.Mode}
	if hp.Protocol.Class() == serviceentry.ClassHTTP {
		o.ALPN = []string{"http/1.1"}
		if hp.Protocol.UpstreamHTTP2() {
			o.ALPN = []string{"h2"}
		}
	}
	if t.Mode == serviceentry.TLSMutual {
		o.ClientSecret = client
	}
	if o.InsecureSkipVerify = t.InsecureSkipVerify; !o.InsecureSkipVerify {
		o.CASecret = ca
		o.SubjectAltNames = t.SubjectAltNames
		if len(o.SubjectAltNames) == 0 {
			o.SubjectAltNames = []string{t.SNI}
		}
	}
	return o
}

// dynamicCluster resolves its destination per request or connection from
// the Host header or SNI.
func dynamicCluster(name string, http2 bool) *Cluster {
	if http2 && name == DynamicHTTPCluster {
		name = DynamicHTTP2Cluster
	}
	return &Cluster{Name: name, Kind: ClusterDynamic, HTTP2: http2}
}

// selfSocket reports whether address:port is one of the gateway's own
// listeners.
func (p *planner) selfSocket(address string, port uint32) bool {
	ip, err := netip.ParseAddr(address)
	return err == nil && p.o.isSelf(ip) && p.listening[port]
}

// absolute writes a DNS name absolute (a trailing dot): the resolver is
// asked for exactly that name, never "<name>.<search domain>". Addresses
// are left as they are.
func absolute(address string) string {
	if _, err := netip.ParseAddr(address); err == nil || strings.HasSuffix(address, ".") {
		return address
	}
	return address + "."
}
