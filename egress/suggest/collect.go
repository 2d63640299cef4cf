package suggest

import (
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
)

// hostStats is everything the denials say about one host (or, once
// grouped, one wildcard).
type hostStats struct {
	host     string
	covers   []string // hosts a wildcard replaces, sorted
	denials  int
	sources  map[string]bool
	lastSeen time.Time
	// ports maps each port number seen to the protocols seen on it.
	ports map[uint32]map[serviceentry.Protocol]bool
}

func newHostStats(host string) *hostStats {
	return &hostStats{host: host, sources: map[string]bool{}, ports: map[uint32]map[serviceentry.Protocol]bool{}}
}

// add counts one observation.
func (h *hostStats) add(o observation) {
	h.denials++
	if o.source != "" {
		h.sources[o.source] = true
	}
	if o.time.After(h.lastSeen) {
		h.lastSeen = o.time
	}
	if o.port != 0 {
		h.addPort(o.port, o.protocol)
	}
}

func (h *hostStats) addPort(n uint32, p serviceentry.Protocol) {
	if h.ports[n] == nil {
		h.ports[n] = map[serviceentry.Protocol]bool{}
	}
	h.ports[n][p] = true
}

// merge adds everything other counted.
func (h *hostStats) merge(other *hostStats) {
	h.denials += other.denials
	for s := range other.sources {
		h.sources[s] = true
	}
	if other.lastSeen.After(h.lastSeen) {
		h.lastSeen = other.lastSeen
	}
	for n, ps := range other.ports {
		for p := range ps {
			h.addPort(n, p)
		}
	}
}

// hasTCP reports whether a plain TCP port was seen.
func (h *hostStats) hasTCP() bool {
	for _, ps := range h.ports {
		if ps[serviceentry.ProtocolTCP] {
			return true
		}
	}
	return false
}

// collect counts the denials a ServiceEntry would fix, per host. With an
// allowlist, a denial whose host and port it allows now (for DNS: whose
// host it matches at all) is left out: it was recorded before the fix.
func collect(ds []*decision.Decision, allow *serviceentry.Allowlist) map[string]*hostStats {
	hosts := map[string]*hostStats{}
	for _, d := range ds {
		o, ok := observe(d)
		if !ok || allowedNow(allow, o) {
			continue
		}
		h := hosts[o.host]
		if h == nil {
			h = newHostStats(o.host)
			hosts[o.host] = h
		}
		h.add(o)
	}
	return hosts
}

// allowedNow reports whether allow lets o through today.
func allowedNow(allow *serviceentry.Allowlist, o observation) bool {
	if allow == nil {
		return false
	}
	if o.port == 0 {
		return allow.Match(o.host) != nil
	}
	_, _, ok := allow.MatchPort(o.host, o.port)
	return ok
}
