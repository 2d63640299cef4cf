package serviceentry

import (
	"fmt"
	"sort"
	"strings"
)

// applyRules compiles the DestinationRules into the allowlist: it keeps the
// first rule of each host (by namespace/name), then sets the TLS
// origination of every host port a rule applies to.
//
// Rules apply to ServiceEntry hosts: an exact rule host to that exact host,
// a wildcard rule host "*.x" to every host it covers, exact or wildcard.
// The most specific rule wins: exact over wildcard, a longer wildcard
// suffix over a shorter one. For each port of the host the rule's
// port-level settings, else its top-level ones, decide:
//
//   - none, DISABLE or ISTIO_MUTUAL: no origination;
//   - SIMPLE or MUTUAL on a TLS-class port (HTTPS, TLS): no origination,
//     with a warning, as the client already sends TLS;
//   - SIMPLE or MUTUAL with resolution NONE, or on a wildcard host without
//     sni: an Origination marked Unsupported, so the gateway refuses the
//     traffic rather than send it in plaintext, and an error;
//   - otherwise an Origination.
func (a *Allowlist) applyRules(rules []*Rule) (exact, wildcard map[string]*Rule) {
	sorted := append([]*Rule(nil), rules...)
	// Valid rules first: an invalid rule only fails closed a host that no
	// valid rule configures.
	sort.SliceStable(sorted, func(i, j int) bool {
		if vi, vj := sorted[i].Invalid == "", sorted[j].Invalid == ""; vi != vj {
			return vi
		}
		return refLess(sorted[i].Ref, sorted[j].Ref)
	})

	exact = map[string]*Rule{}
	wildcard = map[string]*Rule{} // by suffix
	for _, r := range sorted {
		byHost := exact
		key := r.Host
		if IsWildcard(r.Host) {
			byHost, key = wildcard, WildcardSuffix(r.Host)
		}
		if winner, taken := byHost[key]; taken {
			if r.Invalid != "" {
				continue // its errors are reported already
			}
			a.problems = append(a.problems, Problem{
				Ref: r.Ref, Field: "spec.host", Code: CodeRuleConflict, Severity: SeverityWarning,
				Message: fmt.Sprintf("conflicts with DestinationRule %s for host %q; ignored: egressd applies the first rule by namespace/name, so merge the two", winner.Ref, r.Host),
			})
			continue
		}
		byHost[key] = r
		a.rules = append(a.rules, r)
	}

	used := map[*Rule]bool{}
	for _, h := range a.hosts {
		r := mostSpecificRule(h.Name, exact, wildcard)
		if r == nil {
			continue
		}
		used[r] = true
		for i := range h.Ports {
			h.Ports[i].TLS = a.originate(r, h, h.Ports[i])
		}
	}
	for _, r := range a.rules {
		if used[r] || coversAny(r, a.hosts) {
			continue
		}
		msg := fmt.Sprintf("no ServiceEntry lists host %q; the rule has no effect", r.Host)
		if IsWildcard(r.Host) {
			msg = fmt.Sprintf("no ServiceEntry lists a host that %q covers; the rule has no effect", r.Host)
		}
		a.problems = append(a.problems, Problem{Ref: r.Ref, Field: "spec.host", Code: CodeRuleUnused, Severity: SeverityWarning, Message: msg})
	}
	return exact, wildcard
}

// mostSpecificRule returns the rule for the allowlist host name: the exact
// rule, else the wildcard rule with the longest suffix that covers it. A
// wildcard host "*.b.x" is covered by the rules "*.b.x" and "*.x".
func mostSpecificRule(name string, exact, wildcard map[string]*Rule) *Rule {
	domain := name
	if IsWildcard(name) {
		domain = WildcardSuffix(name)
		if r, ok := wildcard[domain]; ok {
			return r
		}
	} else if r, ok := exact[name]; ok {
		return r
	}
	for i := strings.IndexByte(domain, '.'); i >= 0; i = strings.IndexByte(domain, '.') {
		domain = domain[i+1:]
		if r, ok := wildcard[domain]; ok {
			return r
		}
	}
	return nil
}

// coversAny reports whether rule r's host covers any of the hosts, even
// where a more specific rule applies instead.
func coversAny(r *Rule, hosts []*Host) bool {
	for _, h := range hosts {
		if ruleCovers(r.Host, h.Name) {
			return true
		}
	}
	return false
}

// ruleCovers reports whether a rule for ruleHost applies to the allowlist
// host name when no more specific rule exists.
func ruleCovers(ruleHost, name string) bool {
	if !IsWildcard(ruleHost) {
		return ruleHost == name
	}
	suffix := WildcardSuffix(ruleHost)
	domain := name
	if IsWildcard(name) {
		domain = WildcardSuffix(name)
		if domain == suffix {
			return true
		}
	}
	return strings.HasSuffix(domain, "."+suffix)
}

// originate returns the origination of rule r for port hp of host h, and
// records the problems it finds on the rule.
func (a *Allowlist) originate(r *Rule, h *Host, hp HostPort) *Origination {
	if r.Invalid != "" {
		if hp.Protocol.Class() == ClassTLS {
			return nil // the client's own TLS passes through either way
		}
		return &Origination{Rule: r.Ref, SNI: h.Name,
			Unsupported: fmt.Sprintf("DestinationRule %s asks for TLS origination but is invalid (%s); fix it", r.Ref, r.Invalid)}
	}
	t := r.TLSFor(hp.Number)
	if !t.Originates() {
		return nil
	}
	field := "spec.trafficPolicy.tls"
	if _, ok := r.PortTLS[hp.Number]; ok {
		field = "spec.trafficPolicy.portLevelSettings"
	}
	problem := func(sev Severity, format string, args ...any) {
		code := CodeOriginationIgnored
		if sev == SeverityError {
			code = CodeOriginationBlocked
		}
		a.problems = append(a.problems, Problem{Ref: r.Ref, Field: field, Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if hp.Protocol.Class() == ClassTLS {
		problem(SeverityWarning, "the client already sends TLS on port %d of %q (protocol %s in ServiceEntry %s); egressd passes it through and does not originate: declare the port HTTP or TCP for the gateway to originate TLS, or set mode DISABLE for it",
			hp.Number, h.Name, hp.Protocol, hp.Entry.Ref)
		return nil
	}
	o := &Origination{TLSSettings: *t, Rule: r.Ref, SNI: t.SNI}
	if o.SNI == "" {
		o.SNI = h.Name
	}
	o.TLSSettings.SubjectAltNames = cloneStrings(t.SubjectAltNames)
	switch {
	case len(t.SubjectAltNames) > 0:
		o.SubjectAltNames = cloneStrings(t.SubjectAltNames)
	case len(hp.Entry.SubjectAltNames) > 0:
		o.SubjectAltNames = cloneStrings(hp.Entry.SubjectAltNames)
	}
	switch {
	case hp.Entry.Resolution == ResolutionNone:
		o.Unsupported = fmt.Sprintf("TLS origination needs resolution DNS, DNS_ROUND_ROBIN or STATIC; %s uses NONE", h.Name)
		problem(SeverityError, "ServiceEntry %s allows %q port %d with resolution NONE, where the gateway cannot originate TLS: it refuses this traffic rather than send it in plaintext; set the ServiceEntry's resolution to DNS, DNS_ROUND_ROBIN or STATIC",
			hp.Entry.Ref, h.Name, hp.Number)
	case t.SNI == "" && h.Wildcard:
		o.Unsupported = fmt.Sprintf("TLS origination to the wildcard host %s needs an explicit sni", h.Name)
		problem(SeverityError, "%q port %d (ServiceEntry %s) is a wildcard host, which is no server name to send: the gateway refuses this traffic rather than send it in plaintext; set sni, or list the hosts exactly",
			h.Name, hp.Number, hp.Entry.Ref)
	}
	return o
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}
