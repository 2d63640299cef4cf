package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Validate checks the model's own rules: ports and listen ports unique
// and in order, chain names well-formed and unique per listener, every
// cluster and route table a chain or route names present, every verdict
// and reason one of vocab's, every catch-all last. A model Plan made
// always passes; Validate guards the builders against a hand-made or
// edited one.
func (g *Gateway) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	clusters := map[string]*Cluster{}
	for i, c := range g.Clusters {
		if i > 0 && g.Clusters[i-1].Name >= c.Name {
			bad("cluster %q: clusters must be sorted by name, without repeats", c.Name)
		}
		clusters[c.Name] = c
		if err := c.validate(); err != nil {
			bad("cluster %q: %w", c.Name, err)
		}
	}
	routes := map[string]*Routes{}
	listen := map[uint32]string{}
	claim := func(port uint32, who string) {
		if other, ok := listen[port]; ok {
			bad("%s listens on port %d, as %s does", who, port, other)
		}
		listen[port] = who
	}
	for i, p := range g.Ports {
		who := fmt.Sprintf("port %d", p.Number)
		if i > 0 && g.Ports[i-1].Number >= p.Number {
			bad("%s: ports must be sorted by number, without repeats", who)
		}
		claim(p.Listen, who)
		if p.Routes != nil {
			if p.Routes.Port != p.Number || p.Routes.Name != vocab.RouteName(p.Number) {
				bad("%s: route table %q is not the port's", who, p.Routes.Name)
			}
			routes[p.Routes.Name] = p.Routes
			if err := p.Routes.validate(clusters); err != nil {
				bad("%s: routes: %w", who, err)
			}
		}
	}
	check := func(who string, chains []*Chain, def *Chain) {
		names := map[string]bool{}
		for _, c := range append(slices.Clone(chains), def) {
			if c == nil {
				continue
			}
			if names[c.Name] {
				bad("%s: chain %q twice", who, c.Name)
			}
			names[c.Name] = true
			if err := c.validate(clusters, routes); err != nil {
				bad("%s: chain %q: %w", who, c.Name, err)
			}
		}
	}
	for _, p := range g.Ports {
		check(fmt.Sprintf("port %d", p.Number), p.Chains, p.Default)
		if p.Default == nil && !slices.ContainsFunc(p.Chains, func(c *Chain) bool { return c.HTTP != nil }) {
			bad("port %d: neither a default chain nor an HTTP chain: it would close everything unlogged", p.Number)
		}
	}
	if m := g.Mesh; m != nil {
		claim(m.Listen, "the mesh listener")
		check("mesh listener", m.Chains, m.Default)
		if m.Default == nil {
			bad("mesh listener: no default chain")
		}
		for _, c := range m.Chains {
			if !c.MeshTLS {
				bad("mesh listener: chain %q does not terminate mesh TLS", c.Name)
			}
		}
	}
	if px := g.Proxy; px != nil {
		claim(px.Listen, "the proxy listener")
		if px.Routes != ProxyRoutes {
			bad("proxy listener: route table %q", px.Routes)
		}
		if px.HTTP != nil && routes[px.HTTP.Name] != px.HTTP {
			bad("proxy listener: route table %q is no port's", px.HTTP.Name)
		}
	}
	return errors.Join(errs...)
}

func (c *Chain) validate(clusters map[string]*Cluster, routes map[string]*Routes) error {
	if _, ok := vocab.ParseChain(c.Name); !ok {
		return errors.New("not a chain name (vocab.Chain)")
	}
	switch c.Match.Transport {
	case "", TransportTLS, TransportPlaintext:
	default:
		return fmt.Errorf("match transport %q", c.Match.Transport)
	}
	for _, d := range c.Match.Destinations {
		if !d.IsValid() || d != d.Masked() {
			return fmt.Errorf("match destination %s: not a masked prefix", d)
		}
	}
	switch {
	case (c.Forward == nil) == (c.HTTP == nil):
		return errors.New("exactly one of forward and http must be set")
	case c.Forward != nil:
		f := c.Forward
		if f.ClusterBySNI && f.ClusterByAddress {
			return errors.New("a chain chooses its cluster by SNI or by address, not both")
		}
		if _, ok := clusters[f.Cluster]; !ok {
			return fmt.Errorf("cluster %q is not planned", f.Cluster)
		}
		if len(f.Logs) == 0 {
			return errors.New("a forward chain logs its connections")
		}
		for _, l := range f.Logs {
			if !l.Layer.Valid() || !l.Verdict.Valid() || !l.Reason.Valid() {
				return fmt.Errorf("log %s/%s/%s: not vocab's", l.Layer, l.Verdict, l.Reason)
			}
			switch l.When {
			case WhenAlways, WhenSNI, WhenNoSNI, WhenClusterFound, WhenClusterAbsent, WhenAddressFound, WhenAddressAbsent:
			default:
				return fmt.Errorf("log condition %q", l.When)
			}
			if l.ServiceEntryFromCluster && !f.ClusterBySNI && !f.ClusterByAddress {
				return errors.New("a log reads the entry from a cluster chosen by SNI or address, but the chain chooses by neither")
			}
			if (l.When == WhenAddressFound || l.When == WhenAddressAbsent) != f.ClusterByAddress {
				return fmt.Errorf("log condition %q on a chain that chooses by address: %v", l.When, f.ClusterByAddress)
			}
		}
	default:
		r, ok := routes[c.HTTP.Routes]
		if !ok {
			return fmt.Errorf("route table %q is not planned", c.HTTP.Routes)
		}
		if r.Dynamic != c.HTTP.Dynamic || r.ByHost != c.HTTP.ByHost {
			return fmt.Errorf("dynamic/byHost %v/%v disagree with route table %q (%v/%v)", c.HTTP.Dynamic, c.HTTP.ByHost, r.Name, r.Dynamic, r.ByHost)
		}
	}
	return nil
}

func (r *Routes) validate(clusters map[string]*Cluster) error {
	if len(r.VirtualHosts) == 0 {
		return errors.New("no virtual hosts")
	}
	names := map[string]bool{}
	for i, vh := range r.VirtualHosts {
		last := i == len(r.VirtualHosts)-1
		catchAll := vh.Kind == VHostByHost || vh.Kind == VHostUnlisted
		switch {
		case names[vh.Name]:
			return fmt.Errorf("virtual host %q twice", vh.Name)
		case catchAll != last:
			return fmt.Errorf("virtual host %q: the catch-all (by_host or unlisted), and only it, comes last", vh.Name)
		case catchAll && !slices.Equal(vh.Domains, []string{"*"}):
			return fmt.Errorf("virtual host %q: a catch-all's domains are *", vh.Name)
		case vh.Kind == VHostByHost && !r.ByHost, vh.Kind == VHostUnlisted && r.ByHost:
			return fmt.Errorf("virtual host %q: kind %s in a table with byHost %v", vh.Name, vh.Kind, r.ByHost)
		case !vh.Verdict.Valid() || !vh.Reason.Valid():
			return fmt.Errorf("virtual host %q: verdict/reason %s/%s not vocab's", vh.Name, vh.Verdict, vh.Reason)
		case (vh.Kind == VHostBlocked) != (vh.Blocked != nil):
			return fmt.Errorf("virtual host %q: blocked says why, and only it", vh.Name)
		case (vh.Guard == GuardListed) != (len(vh.GuardAllows) > 0):
			return fmt.Errorf("virtual host %q: guard %q with %d allowed ranges", vh.Name, vh.Guard, len(vh.GuardAllows))
		case vh.Guard != GuardDefault && !r.Dynamic:
			return fmt.Errorf("virtual host %q: guard %q in a table that resolves nothing", vh.Name, vh.Guard)
		}
		names[vh.Name] = true
		switch vh.Kind {
		case VHostCluster, VHostUnlisted:
			if _, ok := clusters[vh.Cluster]; !ok {
				return fmt.Errorf("virtual host %q: cluster %q is not planned", vh.Name, vh.Cluster)
			}
		case VHostBlocked, VHostByHost:
			if vh.Cluster != "" {
				return fmt.Errorf("virtual host %q: kind %s names no cluster", vh.Name, vh.Kind)
			}
		default:
			return fmt.Errorf("virtual host %q: kind %q", vh.Name, vh.Kind)
		}
		if vh.Kind == VHostUnlisted || isDynamicHTTP(vh.Cluster) {
			if !r.Dynamic {
				return fmt.Errorf("virtual host %q forwards dynamically in a table marked otherwise", vh.Name)
			}
		}
	}
	return nil
}

func (c *Cluster) validate() error {
	switch c.Kind {
	case ClusterStatic:
		for _, ep := range c.Endpoints {
			if _, err := netip.ParseAddr(ep.Address); err != nil {
				return fmt.Errorf("static endpoint %q is not an address", ep.Address)
			}
		}
	case ClusterStrictDNS, ClusterLogicalDNS:
		if len(c.Endpoints) == 0 {
			return errors.New("a DNS cluster has endpoints")
		}
		if c.Kind == ClusterLogicalDNS && len(c.Endpoints) != 1 {
			return errors.New("a logical DNS cluster has exactly one endpoint")
		}
	case ClusterDynamic, ClusterOriginalDst, ClusterBlackhole:
		if len(c.Endpoints) > 0 {
			return fmt.Errorf("a %s cluster has no endpoints", c.Kind)
		}
	default:
		return fmt.Errorf("kind %q", c.Kind)
	}
	if t := c.TLS; t != nil {
		switch {
		case c.Kind != ClusterStatic && c.Kind != ClusterStrictDNS && c.Kind != ClusterLogicalDNS:
			return fmt.Errorf("a %s cluster originates no TLS", c.Kind)
		case !t.InsecureSkipVerify && (t.CASecret == "" || len(t.SubjectAltNames) == 0):
			return errors.New("TLS origination verifies the upstream: it needs a CA secret and the names to check")
		case t.Mode == serviceentry.TLSMutual && t.ClientSecret == "":
			return errors.New("MUTUAL TLS origination needs a client certificate secret")
		}
	}
	for _, ep := range c.Endpoints {
		if ep.Port == 0 || ep.Port > 65535 {
			return fmt.Errorf("endpoint %s: port %d", ep.Address, ep.Port)
		}
	}
	return nil
}
