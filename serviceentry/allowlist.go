package serviceentry

import (
	"strings"
	"time"
)

// Allowlist is one immutable, compiled snapshot of every valid ServiceEntry,
// with the TLS origination that valid DestinationRules ask for on their
// hosts' ports, and the AuthorizationPolicies and PeerAuthentications that
// apply at the gateway. Servers read it through an atomic pointer and never mutate
// it; a new configuration produces a new Allowlist.
type Allowlist struct {
	version  string
	hosts    []*Host          // sorted by name
	exact    map[string]*Host // "api.example.com" -> host
	wildcard map[string]*Host // "example.com" for "*.example.com"
	entries  []*Entry
	rules    []*Rule
	problems []Problem
	policies []*AuthorizationPolicy // sorted by namespace/name
	peers    []*PeerAuthentication  // sorted by namespace/name
	// entryDigests are the digests of the entries that give hosts, by
	// content (see EntryDigest).
	entryDigests map[*Entry]string
	// virtualServices are the VirtualServices compiled in; sidecars the
	// namespace-wide Sidecars, one per namespace.
	virtualServices []*VirtualService
	sidecars        []*Sidecar
	auditNamespaces []string // sorted
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
	// TLS is the TLS the gateway originates to this host port, from a
	// DestinationRule; nil means none (no rule, mode DISABLE or
	// ISTIO_MUTUAL, or a port where the client already sends TLS).
	TLS *Origination `json:"tls,omitempty"`
	// Route, when set, sends this host port's traffic elsewhere (a
	// VirtualService's egress route): the gateway connects to Route's
	// host and port, not to this one.
	Route *Route `json:"route,omitempty"`
}

// Route is where a VirtualService sends one host port's traffic.
type Route struct {
	// VirtualService and Field name the route.
	VirtualService Ref    `json:"virtualService"`
	Field          string `json:"field"`
	// Host is the destination, listed by Entry on Port (the destination's
	// port as Entry lists it, with the protocol of the port routed).
	Host  string `json:"host"`
	Port  Port   `json:"port"`
	Entry *Entry `json:"-"`
	// TLS is what the gateway originates to the destination (its
	// DestinationRule for that port), nil: none. For HTTP only.
	TLS *Origination `json:"tls,omitempty"`
	// Timeout and Retries: the route's (HTTP).
	Timeout time.Duration `json:"timeout,omitempty"`
	Retries *Retries      `json:"retries,omitempty"`
}

// Target is the host port the gateway connects to for hp: its route's
// destination, else hp itself.
func (hp HostPort) Target() HostPort {
	if hp.Route == nil {
		return hp
	}
	return HostPort{Port: hp.Route.Port, Entry: hp.Route.Entry, TLS: hp.Route.TLS}
}

// Origination is the TLS the gateway originates to one host's port: a
// DestinationRule's settings (SIMPLE or MUTUAL) with the names to use.
type Origination struct {
	// TLSSettings are the rule's settings for this port (its port-level
	// settings, else its top-level ones). Origination's own SNI and
	// SubjectAltNames below hide the embedded ones: use those.
	TLSSettings
	// Rule is the DestinationRule the settings come from.
	Rule Ref `json:"rule"`
	// SNI is the server name to send: the rule's sni, else the host name.
	SNI string `json:"sni"`
	// SubjectAltNames are the names the server certificate must carry:
	// the rule's, else the ServiceEntry's subjectAltNames, else empty (the
	// gateway then verifies the certificate against SNI).
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
	// Unsupported, when not empty, says why the gateway cannot originate
	// TLS here; the gateway must then refuse the traffic (fail closed)
	// rather than send it in plaintext.
	Unsupported string `json:"unsupported,omitempty"`
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

// EntryDigest is a digest of everything e says (its JSON encoding, the
// reference and location included), for an entry that gives a's hosts:
// two entries with one digest are interchangeable, whichever source or
// compile they come from. "" for any other entry.
func (a *Allowlist) EntryDigest(e *Entry) string { return a.entryDigests[e] }

// Hosts returns every allowed host, sorted by name. Callers must not modify it.
func (a *Allowlist) Hosts() []*Host { return a.hosts }

// Entries returns the ServiceEntries the allowlist was compiled from, sorted
// by namespace/name. Callers must not modify them.
func (a *Allowlist) Entries() []*Entry { return a.entries }

// Rules returns the DestinationRules compiled in, sorted by namespace/name:
// every valid rule except those that lost a conflict over their host.
// Callers must not modify them.
func (a *Allowlist) Rules() []*Rule { return a.rules }

// AuthorizationPolicies returns the AuthorizationPolicies compiled in,
// sorted by namespace/name, at most one per namespace/name; invalid ones in
// their fail-closed form (AuthorizationPolicy.Invalid). Callers must not
// modify them.
func (a *Allowlist) AuthorizationPolicies() []*AuthorizationPolicy { return a.policies }

// PeerAuthentications returns the valid PeerAuthentications, sorted by
// namespace/name, at most one per namespace/name. Callers must not modify
// them.
func (a *Allowlist) PeerAuthentications() []*PeerAuthentication { return a.peers }

// Problems returns every problem found while decoding, validating and
// compiling this snapshot.
func (a *Allowlist) Problems() []Problem { return a.problems }

// Errors are the Problems of severity error: what was skipped.
func (a *Allowlist) Errors() []Problem {
	var out []Problem
	for _, p := range a.problems {
		if p.Severity == SeverityError {
			out = append(out, p)
		}
	}
	return out
}

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
