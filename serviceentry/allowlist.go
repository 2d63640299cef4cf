package serviceentry

import (
	"strings"
)

// Allowlist is one immutable, compiled snapshot of every valid ServiceEntry.
// Servers read it through an atomic pointer and never mutate it; a new
// configuration produces a new Allowlist.
type Allowlist struct {
	version  string
	hosts    []*Host          // sorted by name
	exact    map[string]*Host // "api.example.com" -> host
	wildcard map[string]*Host // "example.com" for "*.example.com"
	entries  []*Entry
	problems []Problem
}

// Host is one allowed host name (exact or "*.suffix" wildcard) with every
// port any ServiceEntry allows for it.
type Host struct {
	// Name is the normalised host: "api.example.com" or "*.example.com".
	Name string `json:"name"`
	// Wildcard is true for "*.suffix" names.
	Wildcard bool `json:"wildcard,omitempty"`
	// Ports are sorted by number; at most one per number.
	Ports []HostPort `json:"ports"`
}

// HostPort is one allowed port of a host and the ServiceEntry that allows it.
type HostPort struct {
	Port
	// Entry is the ServiceEntry this port comes from: its resolution,
	// endpoints, addresses and location apply.
	Entry *Entry `json:"-"`
}

// Port returns the host's port with the given number.
func (h *Host) Port(number uint32) (HostPort, bool) {
	for _, p := range h.Ports {
		if p.Number == number {
			return p, true
		}
	}
	return HostPort{}, false
}

// Version identifies the allowlist's content: equal content, equal version.
func (a *Allowlist) Version() string { return a.version }

// Hosts returns every allowed host, sorted by name. Callers must not modify it.
func (a *Allowlist) Hosts() []*Host { return a.hosts }

// Entries returns the ServiceEntries the allowlist was compiled from, sorted
// by namespace/name. Callers must not modify them.
func (a *Allowlist) Entries() []*Entry { return a.entries }

// Problems returns every problem found while decoding, validating and
// compiling this snapshot.
func (a *Allowlist) Problems() []Problem { return a.problems }

// Match returns the allowed host for name: the exact host if listed, else the
// most specific wildcard that covers it ("*.b.example.com" before
// "*.example.com"), else nil. name may carry a trailing dot and any case.
func (a *Allowlist) Match(name string) *Host {
	if a == nil {
		return nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if h, ok := a.exact[name]; ok {
		return h
	}
	// Walk the suffixes from the longest: "a.b.example.com" tries
	// "b.example.com", then "example.com", then "com".
	for i := strings.IndexByte(name, '.'); i >= 0; {
		suffix := name[i+1:]
		if h, ok := a.wildcard[suffix]; ok {
			return h
		}
		j := strings.IndexByte(suffix, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return nil
}

// MatchPort returns the allowed port of name's matching host, if any.
func (a *Allowlist) MatchPort(name string, port uint32) (*Host, HostPort, bool) {
	h := a.Match(name)
	if h == nil {
		return nil, HostPort{}, false
	}
	p, ok := h.Port(port)
	return h, p, ok
}
