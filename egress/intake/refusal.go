package intake

import (
	"net/netip"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Refused turns a decision whose upstream could not be reached because
// the gateway's resolver refused the name's addresses into deny /
// blocked_address (or forwarding_loop, when an address was the gateway's
// own), with the addresses in the detail, and reports whether it did.
// The resolver notes each refusal in the ledger (netguard.Ledger) before
// it answers the gateway, so the entry of the failed request or connection
// finds it. The names looked up are the requested host and, when the
// decision names a ServiceEntry (or the allowlist a finds one for the host
// and port), its hosts and endpoint names. A decision that reached its
// upstream, or whose upstream failed for another reason, is left alone.
func Refused(d *decision.Decision, a *serviceentry.Allowlist, ledger *netguard.Ledger, now time.Time) bool {
	if ledger == nil || !unreached(d) {
		return false
	}
	for _, name := range candidateNames(d, a) {
		r, ok := ledger.Lookup(name, now)
		if !ok || r.Kept > 0 {
			continue
		}
		d.Verdict, d.Reason, d.Detail = vocab.VerdictDeny, r.Reason(), r.Detail()
		if d.ServiceEntry == "" {
			d.ServiceEntry = r.ServiceEntry
		}
		return true
	}
	return false
}

// unreached reports whether d is traffic the gateway let through that got
// no upstream: upstream_error, or an AUDIT or ALLOW_ANY forward whose
// connect failed (no healthy upstream, DNS failure, connect failure).
func unreached(d *decision.Decision) bool {
	if d.Verdict == vocab.VerdictDeny {
		return d.Reason == vocab.ReasonUpstreamError
	}
	for _, f := range strings.Split(d.Flags, ",") {
		switch f {
		case "UH", "UF", "DF":
			return true
		}
	}
	return false
}

// candidateNames are the names whose lookup d's upstream needed.
func candidateNames(d *decision.Decision, a *serviceentry.Allowlist) []string {
	var names []string
	if d.Host != "" {
		names = append(names, d.Host)
	}
	if a == nil {
		return names
	}
	var entry *serviceentry.Entry
	if d.ServiceEntry != "" {
		for _, e := range a.Entries() {
			if e.Ref.String() == d.ServiceEntry {
				entry = e
				break
			}
		}
	} else if d.Host != "" {
		if _, hp, ok := a.MatchPort(d.Host, d.Port); ok {
			entry = hp.Entry
		}
	}
	if entry == nil {
		return names
	}
	for _, h := range entry.Hosts {
		if !strings.HasPrefix(h, "*") && h != d.Host {
			names = append(names, h)
		}
	}
	for _, ep := range entry.Endpoints {
		if _, err := netip.ParseAddr(ep.Address); err != nil && ep.Address != "" {
			names = append(names, ep.Address)
		}
	}
	return names
}
