package serviceentry

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Compile is CompileConfig without DestinationRules: it builds an
// Allowlist from validated entries alone.
func Compile(entries []*Entry, problems []Problem) *Allowlist {
	return CompileConfig(Config{Entries: entries}, problems)
}

// CompileConfig builds an immutable Allowlist from validated ServiceEntries
// and DestinationRules. problems (from decoding and validation) are kept in
// the snapshot so that it reports everything found; CompileConfig appends
// the conflicts and other findings of its own.
//
// Conflicts are resolved deterministically: resources are ordered by
// namespace, name and file, and the first to claim a host and port (or, for
// DestinationRules, a host) keeps it. Istio instead prefers the oldest
// resource; files carry no creation time, so egressd uses the name order
// and reports every loser. The result does not depend on the order of
// c's slices.
//
// Each host port then gets the TLS origination of the most specific rule
// for its host; see applyRules.
//
// AuthorizationPolicies and PeerAuthentications are kept as they are,
// sorted by namespace and name; of several with one namespace/name (from
// different files) the first in file order is kept and the others are
// reported. Which of them apply to the gateway is for the gateway to decide
// by their selectors.
func CompileConfig(c Config, problems []Problem) *Allowlist {
	return CompileConfigWith(c, problems, nil)
}

// CompileConfigWith is CompileConfig reusing what compiling last (may be
// nil) found of the entries c shares with it, by pointer: a source that
// keeps the validated entries of unchanged resources (the Kubernetes
// source does) then hashes only the changed ones. Entries are never
// changed once validated, so a shared pointer is shared content.
func CompileConfigWith(c Config, problems []Problem, last *Allowlist) *Allowlist {
	sorted := append([]*Entry(nil), c.Entries...)
	slices.SortStableFunc(sorted, func(x, y *Entry) int { return CompareRefs(x.Ref, y.Ref) })

	a := &Allowlist{
		exact:    map[string]*Host{},
		wildcard: map[string]*Host{},
		entries:  sorted,
		problems: append([]Problem(nil), problems...),
	}
	ports := newPortClaims()
	for _, e := range sorted {
		for pi, p := range e.Ports {
			if msg := ports.claim(e, p); msg != "" {
				a.problems = append(a.problems, Problem{
					Ref: e.Ref, Field: fmt.Sprintf("spec.ports[%d]", pi), Code: CodePortConflict, Severity: SeverityError, Message: msg,
				})
				continue
			}
			for hi, name := range e.Hosts {
				h := a.host(name)
				if prev, ok := h.Port(p.Number); ok {
					a.problems = append(a.problems, Problem{
						Ref: e.Ref, Field: fmt.Sprintf("spec.hosts[%d]", hi), Code: CodeHostConflict, Severity: SeverityError,
						Message: fmt.Sprintf("host %q port %d is already allowed by ServiceEntry %s; this port is ignored for this host",
							name, p.Number, prev.Entry.Ref),
					})
					continue
				}
				h.Ports = append(h.Ports, HostPort{Port: p, Entry: e})
			}
		}
	}
	for _, h := range a.exact {
		a.hosts = append(a.hosts, h)
	}
	for _, h := range a.wildcard {
		a.hosts = append(a.hosts, h)
	}
	slices.SortFunc(a.hosts, func(x, y *Host) int { return strings.Compare(x.Name, y.Name) })
	for _, h := range a.hosts {
		if len(h.Ports) > 1 {
			slices.SortFunc(h.Ports, func(x, y HostPort) int { return cmp.Compare(x.Number, y.Number) })
		}
	}
	exactRules, wildcardRules := a.applyRules(c.Rules)
	a.applyRoutes(c.VirtualServices, exactRules, wildcardRules)
	a.keepSidecars(c.Sidecars)
	a.auditNamespaces = slices.Compact(slices.Sorted(slices.Values(c.AuditNamespaces)))
	a.policies = uniqueByRef(a, c.AuthorizationPolicies, func(p *AuthorizationPolicy) Ref { return p.Ref })
	a.peers = uniqueByRef(a, c.PeerAuthentications, func(p *PeerAuthentication) Ref { return p.Ref })
	var known map[*Entry]string
	if last != nil {
		known = last.entryDigests
	}
	a.version = a.digest(known)
	return a
}

// uniqueByRef sorts resources by namespace, name and file, and keeps the
// first of each namespace/name: Kubernetes holds one, and Envoy names are
// derived from it. Every other one is reported in a's problems.
func uniqueByRef[T any](a *Allowlist, in []T, ref func(T) Ref) []T {
	if len(in) == 0 {
		return nil
	}
	sorted := append([]T(nil), in...)
	sort.SliceStable(sorted, func(i, j int) bool { return refLess(ref(sorted[i]), ref(sorted[j])) })
	out := sorted[:0:0]
	for _, x := range sorted {
		r := ref(x)
		if n := len(out); n > 0 {
			if prev := ref(out[n-1]); prev.Namespace == r.Namespace && prev.Name == r.Name {
				a.problems = append(a.problems, Problem{
					Ref: r, Code: CodeDuplicateName, Severity: SeverityError,
					Message: fmt.Sprintf("%s %s is already defined at %s; a namespace holds one %s of a name: rename one (this one is ignored)", r.Kind, r, location(prev), r.Kind),
				})
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// location returns "file:line" (or what is known of it) for messages.
func location(r Ref) string {
	switch {
	case r.File == "":
		return "another source"
	case r.Line > 0:
		return fmt.Sprintf("%s:%d", r.File, r.Line)
	}
	return r.File
}

// host returns the Host for name, creating it on first use.
func (a *Allowlist) host(name string) *Host {
	if IsWildcard(name) {
		suffix := WildcardSuffix(name)
		if h, ok := a.wildcard[suffix]; ok {
			return h
		}
		h := &Host{Name: name, Wildcard: true}
		a.wildcard[suffix] = h
		return h
	}
	if h, ok := a.exact[name]; ok {
		return h
	}
	h := &Host{Name: name}
	a.exact[name] = h
	return h
}

// digest hashes the compiled content (hosts, ports with their TLS
// origination, the rules, authorization and peer authentication policies
// compiled in; not the problems): equal
// allowlists get equal versions, so an unchanged reload publishes nothing
// new, and a change to a DestinationRule alone is a new version.
func (a *Allowlist) digest(known map[*Entry]string) string {
	// An entry is hashed once, however many hosts and ports it gives;
	// hosts name it by that digest. known are digests of entries already
	// hashed.
	entries := make(map[*Entry]string, len(a.entries))
	var list []*Entry
	for _, h := range a.hosts {
		for _, p := range h.Ports {
			if _, ok := entries[p.Entry]; ok {
				continue
			}
			d, ok := known[p.Entry]
			entries[p.Entry] = d
			if !ok {
				list = append(list, p.Entry)
			}
		}
	}
	sums := make([]string, len(list))
	parallel(len(list), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sum := sha256.Sum256(mustJSON(list[i]))
			sums[i] = hex.EncodeToString(sum[:16])
		}
	})
	for i, e := range list {
		entries[e] = sums[i]
	}
	a.entryDigests = entries
	type port struct {
		Port
		Entry string       `json:"entry"`
		TLS   *Origination `json:"tls,omitempty"`
		// Route with the digest of its destination's entry.
		Route      *Route `json:"route,omitempty"`
		RouteEntry string `json:"routeEntry,omitempty"`
	}
	type host struct {
		Name  string `json:"name"`
		Ports []port `json:"ports"`
	}
	hosts := make([]host, 0, len(a.hosts))
	for _, h := range a.hosts {
		hh := host{Name: h.Name}
		for _, p := range h.Ports {
			pp := port{Port: p.Port, Entry: entries[p.Entry], TLS: p.TLS, Route: p.Route}
			if p.Route != nil {
				pp.RouteEntry = entries[p.Route.Entry]
			}
			hh.Ports = append(hh.Ports, pp)
		}
		hosts = append(hosts, hh)
	}
	rest := struct {
		Rules    []*Rule                `json:"rules,omitempty"`
		Policies []*AuthorizationPolicy `json:"authorizationPolicies,omitempty"`
		Peers    []*PeerAuthentication  `json:"peerAuthentications,omitempty"`
		Services []*VirtualService      `json:"virtualServices,omitempty"`
		Sidecars []*Sidecar             `json:"sidecars,omitempty"`
		Audit    []string               `json:"auditNamespaces,omitempty"`
	}{a.rules, a.policies, a.peers, a.virtualServices, a.sidecars, a.auditNamespaces}
	// The hosts are encoded in chunks on every core; the version hashes
	// the chunks' digests in order, then the rest.
	workers := runtime.GOMAXPROCS(0)
	chunk := max(256, (len(hosts)+workers-1)/workers)
	parts := make([][sha256.Size]byte, (len(hosts)+chunk-1)/chunk)
	parallel(len(parts), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			parts[i] = sha256.Sum256(mustJSON(hosts[i*chunk : min((i+1)*chunk, len(hosts))]))
		}
	})
	sum := sha256.New()
	for _, p := range parts {
		sum.Write(p[:])
	}
	sum.Write(mustJSON(rest))
	return hex.EncodeToString(sum.Sum(nil)[:8])
}

// parallel calls f on slices [lo, hi) of [0, n) on every core.
func parallel(n int, f func(lo, hi int)) {
	workers := max(1, runtime.GOMAXPROCS(0))
	step := max(1, (n+workers-1)/workers)
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// mustJSON encodes compiled content, which is only plain data.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("serviceentry: hashing allowlist: %v", err))
	}
	return b
}

// CompareRefs orders references by namespace, name, file and line: the
// order in which conflicts between resources are decided.
func CompareRefs(a, b Ref) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := strings.Compare(a.File, b.File); c != 0 {
		return c
	}
	return cmp.Compare(a.Line, b.Line)
}

func refLess(a, b Ref) bool { return CompareRefs(a, b) < 0 }

// portClaims records which gateway port a TCP-class entry owns, so two
// entries never claim the same plaintext traffic: the gateway tells TCP
// connections apart only by destination address and port.
type portClaims struct {
	byAddress map[string]*Entry // "198.18.0.0/24|5432"
	wholePort map[uint32]*Entry // TCP entry without addresses: every plaintext connection on the port
	http      map[uint32]*Entry // first HTTP-class entry on the port
}

func newPortClaims() *portClaims {
	return &portClaims{byAddress: map[string]*Entry{}, wholePort: map[uint32]*Entry{}, http: map[uint32]*Entry{}}
}

// claim records e's port p and returns a message when it conflicts with an
// earlier entry.
func (c *portClaims) claim(e *Entry, p Port) string {
	switch p.Protocol.Class() {
	case ClassHTTP:
		if prev, ok := c.wholePort[p.Number]; ok && prev != e {
			return fmt.Sprintf("port %d: HTTP conflicts with TCP ServiceEntry %s, which takes every plaintext connection on this port (it has no addresses); give it spec.addresses or use another port", p.Number, prev.Ref)
		}
		if _, ok := c.http[p.Number]; !ok {
			c.http[p.Number] = e
		}
	case ClassTCP:
		if len(e.Addresses) == 0 {
			if e.Resolution == ResolutionNone && IsWildcard(e.Hosts[0]) {
				return fmt.Sprintf("port %d: TCP with resolution NONE, no addresses and the wildcard host %q leaves the gateway no destination to connect to; add spec.addresses, endpoints, or an exact host", p.Number, e.Hosts[0])
			}
			if prev, ok := c.wholePort[p.Number]; ok && prev != e {
				return fmt.Sprintf("port %d: TCP without addresses is already claimed by ServiceEntry %s; the gateway can tell such connections apart only by address, so add spec.addresses", p.Number, prev.Ref)
			}
			if prev, ok := c.http[p.Number]; ok && prev != e {
				return fmt.Sprintf("port %d: TCP without addresses conflicts with HTTP ServiceEntry %s on the same port; add spec.addresses or use another port", p.Number, prev.Ref)
			}
			c.wholePort[p.Number] = e
			return ""
		}
		for _, pfx := range e.Addresses {
			key := addressKey(pfx, p.Number)
			if prev, ok := c.byAddress[key]; ok && prev != e {
				return fmt.Sprintf("address %s port %d is already claimed by ServiceEntry %s", pfx, p.Number, prev.Ref)
			}
		}
		for _, pfx := range e.Addresses {
			c.byAddress[addressKey(pfx, p.Number)] = e
		}
	}
	return ""
}

func addressKey(p netip.Prefix, port uint32) string {
	return fmt.Sprintf("%s|%d", p.Masked(), port)
}
