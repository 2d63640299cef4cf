package dnsproxy

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Ranges the rebinding guard blocks besides those netip classifies
// (loopback, private, link-local, multicast, unspecified).
var extraBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // shared address space (CGNAT)
	netip.MustParsePrefix("255.255.255.255/32"), // limited broadcast
	netip.MustParsePrefix("fec0::/10"),          // deprecated site-local
}

// nat64 is the well-known NAT64 prefix: its addresses embed an IPv4 address
// that is checked like any other.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// blockedAddr reports whether ip is in a range the rebinding guard blocks:
// loopback, link-local (169.254.0.0/16, where cloud metadata services such
// as 169.254.169.254 live, and fe80::/10), private (RFC 1918, fc00::/7),
// shared (100.64.0.0/10), unspecified, multicast and broadcast. IPv4-mapped
// and NAT64 IPv6 addresses are judged by the IPv4 address they carry.
func blockedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	for _, p := range extraBlocked {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// listedAddr reports whether one of the ServiceEntry's ranges holds ip.
func listedAddr(listed []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range listed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// guardResult is what the rebinding guard did to one answer.
type guardResult struct {
	kept    int      // A/AAAA records of the question's name and type left in the answer section
	dropped []string // the addresses it dropped
}

// guard removes blocked A and AAAA records (unless listed) from every
// section of m, in place. It counts the address records of type qtype that
// remain in the answer section.
func guard(m *dns.Msg, qtype uint16, listed []netip.Prefix) guardResult {
	var res guardResult
	filter := func(rrs []dns.RR, answer bool) []dns.RR {
		out := rrs[:0]
		for _, rr := range rrs {
			var ip net.IP
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			default:
				out = append(out, rr)
				continue
			}
			addr, ok := netip.AddrFromSlice(ip)
			if !ok || (blockedAddr(addr) && !listedAddr(listed, addr)) {
				res.dropped = append(res.dropped, ip.String())
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
