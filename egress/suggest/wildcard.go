package suggest

import (
	"maps"
	"slices"
	"strings"

	"github.com/egressd/egressd/serviceentry"
	"golang.org/x/net/publicsuffix"
)

// DefaultWildcardMin is the number of distinct hosts under one registrable
// domain from which a "*.domain" wildcard is suggested instead.
const DefaultWildcardMin = 3

// group replaces the hosts that share a registrable domain by one
// "*.domain" wildcard when at least threshold of them can be covered;
// threshold < 1 disables wildcards. The result is sorted by host.
func group(hosts map[string]*hostStats, threshold int, allow *serviceentry.Allowlist) []*hostStats {
	var out []*hostStats
	byDomain := map[string][]*hostStats{}
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		h := hosts[name]
		domain, ok := "", threshold >= 1
		if ok {
			domain, ok = wildcardDomain(h, allow)
		}
		if !ok {
			out = append(out, h)
			continue
		}
		byDomain[domain] = append(byDomain[domain], h)
	}
	for _, domain := range slices.Sorted(maps.Keys(byDomain)) {
		members := byDomain[domain]
		if len(members) < threshold {
			out = append(out, members...)
			continue
		}
		w := newHostStats("*." + domain)
		for _, m := range members {
			w.merge(m)
			w.covers = append(w.covers, m.host)
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *hostStats) int { return strings.Compare(a.host, b.host) })
	return out
}

// wildcardDomain returns the registrable domain ("example.co.uk") whose
// wildcard could cover h, and false when h must stay an exact host:
//
//   - h is the domain itself (a wildcard does not cover its apex), or is
//     a public suffix, or under a top-level domain the Public Suffix List
//     does not know (internal names have no registrable domain);
//   - a plain TCP port was seen: with resolution NONE and no addresses the
//     gateway would have no destination for it;
//   - the allowlist already matches h by another name: egressd matches the
//     exact host, then the most specific wildcard, so a new, wider
//     wildcard would never reach h.
func wildcardDomain(h *hostStats, allow *serviceentry.Allowlist) (string, bool) {
	if h.hasTCP() {
		return "", false
	}
	domain, err := publicsuffix.EffectiveTLDPlusOne(h.host)
	if err != nil || domain == h.host {
		return "", false
	}
	suffix, icann := publicsuffix.PublicSuffix(domain)
	if suffix == domain || (!icann && !strings.Contains(suffix, ".")) {
		return "", false
	}
	if allow != nil {
		if m := allow.Match(h.host); m != nil && m.Name != "*."+domain {
			return "", false
		}
	}
	return domain, true
}
