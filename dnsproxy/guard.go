package dnsproxy

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/serviceentry/netguard"
)

// guardResult is what the rebinding guard did to one answer.
type guardResult struct {
	kept    int                // A/AAAA records of the question's name and type left in the answer section
	dropped []netguard.Verdict // the addresses it dropped, with why
}

// droppedList renders the dropped addresses: "127.0.0.1 (loopback), ...".
func (g guardResult) droppedList() string {
	parts := make([]string, len(g.dropped))
	for i, v := range g.dropped {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}

// guard removes the A and AAAA records that policy refuses (see
// netguard.Policy.Check; listed are the ranges the name's ServiceEntries
// list) from every section of m, in place. It counts the address records
// of type qtype that remain in the answer section.
func guard(m *dns.Msg, qtype uint16, policy *netguard.Policy, listed []netip.Prefix) guardResult {
	var res guardResult
	filter := func(rrs []dns.RR, answer bool) []dns.RR {
		out := rrs[:0]
		for _, rr := range rrs {
			addr, ok := addressOf(rr)
			if !ok {
				out = append(out, rr)
				continue
			}
			if v := policy.Check(addr, listed); !v.Allowed {
				res.dropped = append(res.dropped, v)
				continue
			}
			if answer && (qtype == dns.TypeANY || rr.Header().Rrtype == qtype) {
				res.kept++
			}
			out = append(out, rr)
		}
		return out
	}
	m.Answer = filter(m.Answer, true)
	m.Ns = filter(m.Ns, false)
	m.Extra = filter(m.Extra, false)
	return res
}

// addressOf returns the address of an A or AAAA record (the zero address
// for a malformed one); ok is false for other records.
func addressOf(rr dns.RR) (addr netip.Addr, ok bool) {
	var ip net.IP
	switch v := rr.(type) {
	case *dns.A:
		ip = v.A
	case *dns.AAAA:
		ip = v.AAAA
	default:
		return netip.Addr{}, false
	}
	addr, _ = netip.AddrFromSlice(ip)
	return addr, true
}

// stripAddresses removes every A and AAAA record from every section of m,
// in place: forwarded answers for names the proxy synthesises addresses
// for must not carry real addresses (glue) that bypass the gateway.
func stripAddresses(m *dns.Msg) {
	strip := func(rrs []dns.RR) []dns.RR {
		out := rrs[:0]
		for _, rr := range rrs {
			switch rr.Header().Rrtype {
			case dns.TypeA, dns.TypeAAAA:
				continue
			}
			out = append(out, rr)
		}
		return out
	}
	m.Answer = strip(m.Answer)
	m.Ns = strip(m.Ns)
	m.Extra = strip(m.Extra)
}

// cnameChain follows the CNAME records of m's answer section from name and
// returns the names it passes through, name first (canonical form). It
// stops at loops and after 16 hops.
func cnameChain(m *dns.Msg, name string) []string {
	chain := []string{name}
	cur := name
	for hops := 0; hops < 16; hops++ {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, cur) {
				next = dns.CanonicalName(c.Target)
				break
			}
		}
		if next == "" {
			break
		}
		for _, n := range chain {
			if n == next {
				return chain
			}
		}
		chain = append(chain, next)
		cur = next
	}
	return chain
}
