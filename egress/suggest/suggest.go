package suggest

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
)

// Options tune Suggest and YAML.
type Options struct {
	// Namespace is the metadata.namespace of generated entries; "" omits
	// it.
	Namespace string
	// WildcardMin is the number of distinct denied hosts under one
	// registrable domain from which "*.domain" is suggested instead of
	// them; 0 means DefaultWildcardMin, a negative number disables
	// wildcards.
	WildcardMin int
	// Allowlist, when non-nil, is the allowlist in force: denials of host
	// and port pairs it allows now were recorded before a fix, and are
	// skipped.
	Allowlist *serviceentry.Allowlist
}

// Suggestion is one ServiceEntry that would have allowed some denials.
type Suggestion struct {
	// Host is "api.example.com" or "*.example.com".
	Host string `json:"host"`
	// Covers lists, for a wildcard, the denied hosts it covers.
	Covers []string `json:"covers,omitempty"`
	// Ports are sorted by number.
	Ports []Port `json:"ports"`
	// Resolution is DNS for exact hosts, NONE for wildcards.
	Resolution string `json:"resolution"`
	// Denials counts the decisions this suggestion would have allowed.
	Denials int `json:"denials"`
	// Sources are the distinct callers (identities when known, else source
	// IP addresses), sorted (addresses first, in address order), at most
	// MaxSources.
	Sources []string `json:"sources"`
	// LastSeen is the time of the latest denial.
	LastSeen time.Time `json:"last_seen"`
	// Notes say what was assumed or needs a look before applying.
	Notes []string `json:"notes,omitempty"`
	// Name is the ServiceEntry's metadata.name, a DNS-1123 label unique
	// across one Suggest result.
	Name string `json:"name"`
}

// MaxSources is the most sources a Suggestion lists.
const MaxSources = 10

// Resolutions of suggested entries.
const (
	resolutionDNS  = string(serviceentry.ResolutionDNS)
	resolutionNone = string(serviceentry.ResolutionNone)
)

// Suggest turns denials into ServiceEntry suggestions: one per host (or
// per wildcard replacing several hosts), its ports merged. The result is
// deterministic, sorted by Denials (most first), then Host.
func Suggest(ds []*decision.Decision, o Options) []Suggestion {
	threshold := o.WildcardMin
	if threshold == 0 {
		threshold = DefaultWildcardMin
	}
	groups := group(collect(ds, o.Allowlist), threshold, o.Allowlist)
	ss := make([]Suggestion, 0, len(groups))
	for _, g := range groups {
		ss = append(ss, build(g, o.Allowlist))
	}
	noteClashes(ss, o.Allowlist)
	assignNames(ss)
	slices.SortStableFunc(ss, func(a, b Suggestion) int {
		if a.Denials != b.Denials {
			return b.Denials - a.Denials
		}
		return strings.Compare(a.Host, b.Host)
	})
	return ss
}

// build makes the suggestion for one host or wildcard; Name is set later.
func build(h *hostStats, allow *serviceentry.Allowlist) Suggestion {
	ports, notes := mergePorts(h.ports)
	s := Suggestion{
		Host:       h.host,
		Covers:     h.covers,
		Ports:      ports,
		Resolution: resolutionDNS,
		Denials:    h.denials,
		Sources:    slices.SortedFunc(maps.Keys(h.sources), compareSources),
		LastSeen:   h.lastSeen,
		Notes:      notes,
	}
	if serviceentry.IsWildcard(h.host) {
		s.Resolution = resolutionNone
	} else if extra, note := shadowedPorts(h.host, ports, allow); len(extra) > 0 {
		s.Ports = append(s.Ports, extra...)
		slices.SortFunc(s.Ports, func(a, b Port) int { return int(a.Number) - int(b.Number) })
		s.Notes = append(s.Notes, note)
	}
	if n := len(s.Sources); n > MaxSources {
		s.Sources = s.Sources[:MaxSources]
		s.Notes = append(s.Notes, fmt.Sprintf("%d more sources not listed", n-MaxSources))
	}
	if s.Sources == nil {
		s.Sources = []string{}
	}
	return s
}

// compareSources orders IP addresses first, by address, then identities.
func compareSources(a, b string) int {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return x.Compare(y)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
