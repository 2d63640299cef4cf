package gateway

import (
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/egressd/egressd/serviceentry"
)

// Cache keeps what the last Plan made of each service port, so that the
// next Plan with it plans again only the ports whose hosts changed: one
// changed ServiceEntry among 10,000 replans its own ports, and the others'
// Port models (and clusters) are the same values as before, which the xds
// memo then recognises at once. A port is reused when its hosts are equal
// by content: the same names on the same ports from entries of the same
// digest (serviceentry.Allowlist.EntryDigest) with the same TLS
// origination, and the options and the set of listener ports unchanged.
// Planning a port reads nothing else, so a reused port is what planning
// it again would give. The zero Cache is empty and ready; it is safe for
// concurrent use, and holds one Plan's ports.
type Cache struct {
	mu        sync.Mutex
	opts      Options
	listening map[uint32]bool
	// last are the ports of the last Plan, by number.
	last map[uint32]*portPlan
}

// upstreamPlan is one planned upstream cluster with what it was planned
// from.
type upstreamPlan struct {
	host     string
	port     serviceentry.Port
	entry    string // the entry's digest
	tls      *serviceentry.Origination
	cluster  *Cluster
	warnings []string
}

// portPlan is what planning one port gave.
type portPlan struct {
	in   *portHosts
	port *Port
	// mesh are its chains on the mesh listener.
	mesh []*Chain
	// clusters are every cluster the port named, by name; warnings what
	// it left out.
	clusters []*Cluster
	warnings []string
	// upstreams are its upstream clusters by name, with what each was
	// planned from, so the port planned again (one of its hosts changed)
	// reuses those of its other hosts.
	upstreams map[string]*upstreamPlan
}

// reusable returns the cache's last ports if they were planned with opts
// and listening, else none.
func (c *Cache) reusable(opts Options, listening map[uint32]bool) map[uint32]*portPlan {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || !sameOptions(c.opts, opts) || !maps.Equal(c.listening, listening) {
		return nil
	}
	return c.last
}

// keep makes next the cache's last ports.
func (c *Cache) keep(opts Options, listening map[uint32]bool, next map[uint32]*portPlan) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts, c.listening, c.last = opts, listening, next
}

// reuses reports whether u was planned from the same inputs.
func (u *upstreamPlan) reuses(host string, hp serviceentry.HostPort, entry string) bool {
	return entry != "" && u.entry == entry && u.host == host && u.port == hp.Port && sameOrigination(u.tls, hp.TLS)
}

// sameOptions compares options; SecretNames by identity.
func sameOptions(a, b Options) bool {
	fa, fb := reflect.ValueOf(a.SecretNames), reflect.ValueOf(b.SecretNames)
	if fa.IsNil() != fb.IsNil() || (!fa.IsNil() && fa.Pointer() != fb.Pointer()) {
		return false
	}
	a.SecretNames, b.SecretNames = nil, nil
	return reflect.DeepEqual(a, b)
}

// samePortHosts reports whether two ports' hosts are equal by content.
func samePortHosts(a, b *portHosts) bool {
	return a.number == b.number && a.alwaysHTTP == b.alwaysHTTP && a.alwaysTLS == b.alwaysTLS &&
		slices.EqualFunc(a.http, b.http, sameHostPort) &&
		slices.EqualFunc(a.tls, b.tls, sameHostPort) &&
		slices.EqualFunc(a.tcp, b.tcp, sameHostPort)
}

func sameHostPort(a, b hostPort) bool {
	return a.entry != "" && a.entry == b.entry && a.host.Name == b.host.Name && a.host.Wildcard == b.host.Wildcard &&
		a.sniPort == b.sniPort && a.hp.Port == b.hp.Port && sameOrigination(a.hp.TLS, b.hp.TLS) &&
		a.routeEntry == b.routeEntry && sameRoute(a.hp.Route, b.hp.Route)
}

// sameRoute compares routes by content; their entries by digest (the
// caller compares those).
func sameRoute(a, b *serviceentry.Route) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Entry, y.Entry = nil, nil
	return reflect.DeepEqual(x, y)
}

func sameOrigination(a, b *serviceentry.Origination) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(*a, *b)
}
