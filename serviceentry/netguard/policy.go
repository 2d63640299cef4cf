package netguard

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Policy is the address rule of one gateway: Classify, plus the ranges the
// operator allows and the gateway's own addresses. The zero Policy blocks
// every non-public address and knows no own addresses. A Policy is not
// modified after it is handed out.
type Policy struct {
	// Allow are ranges the operator allows on purpose
	// (--upstream-allow-cidrs), for example partners reached over a VPN
	// at 10.x.
	Allow []netip.Prefix
	// Self are the gateway's own addresses (its listeners, the addresses
	// clients are given for it): never an upstream, whatever else allows
	// them.
	Self []netip.Prefix
}

// Verdict is the outcome of Policy.Check for one address.
type Verdict struct {
	// Addr is the address checked.
	Addr netip.Addr
	// Allowed is true when the gateway may connect to Addr.
	Allowed bool
	// Reason is vocab.ReasonBlockedAddress or vocab.ReasonForwardingLoop when not
	// allowed, "" otherwise.
	Reason vocab.Reason
	// Classification is what Classify said of Addr.
	Classification
}

// String renders a refusal for people: "127.0.0.1 (loopback)",
// "10.1.2.3 (the gateway's own address)".
func (v Verdict) String() string {
	switch {
	case v.Reason == vocab.ReasonForwardingLoop:
		return v.Addr.String() + " (the gateway's own address)"
	case v.Allowed:
		return v.Addr.String()
	}
	return v.Addr.String() + " (" + v.Classification.String() + ")"
}

// Check decides whether the gateway may connect to ip. listed are the
// ranges the ServiceEntry behind the connection lists (its addresses and
// its STATIC endpoints). In order: one of the gateway's own addresses is
// refused (forwarding_loop); a listed or operator-allowed address is
// allowed; a blocked class is refused (blocked_address); anything else is
// allowed. An IPv6 form that carries an IPv4 address matches ranges by
// either.
func (p *Policy) Check(ip netip.Addr, listed []netip.Prefix) Verdict {
	c := Classify(ip)
	v := Verdict{Addr: ip, Classification: c}
	if c.Class == ClassInvalid {
		v.Reason = vocab.ReasonBlockedAddress
		return v
	}
	forms := []netip.Addr{ip.WithZone("").Unmap()}
	if c.Embedded.IsValid() && c.Embedded != forms[0] {
		forms = append(forms, c.Embedded)
	}
	within := func(ranges []netip.Prefix) bool {
		for _, a := range forms {
			for _, r := range ranges {
				if r.Contains(a) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case p != nil && within(p.Self):
		v.Reason = vocab.ReasonForwardingLoop
	case within(listed) || (p != nil && within(p.Allow)):
		v.Allowed = true
	case c.Blocked():
		v.Reason = vocab.ReasonBlockedAddress
	default:
		v.Allowed = true
	}
	return v
}

// IsSelf reports whether ip is one of the gateway's own addresses.
func (p *Policy) IsSelf(ip netip.Addr) bool {
	if p == nil {
		return false
	}
	a := ip.WithZone("").Unmap()
	for _, r := range p.Self {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses a list of CIDR ranges or single addresses (a
// single address is its own /32 or /128), naming the bad item in the
// error.
func ParsePrefixes(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range items {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR range (10.20.0.0/16) nor an IP address", s)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// sortPrefixes orders ranges by family, address, then length, and removes
// duplicates in place.
func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, comparePrefixes)
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Normalize returns ranges sorted, masked and without duplicates: a stable
// form for configuration that is compared or hashed.
func Normalize(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	sortPrefixes(out)
	return slices.Compact(out)
}

// Subtract returns the parts of p outside every range of holes, as the
// fewest CIDR ranges, in address order: p itself when no hole meets it,
// nothing when a hole covers it.
func Subtract(p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	p = p.Masked()
	for _, h := range holes {
		h = h.Masked()
		if h.Addr().Is4() != p.Addr().Is4() || !h.Overlaps(p) {
			continue
		}
		if h.Bits() <= p.Bits() {
			return nil // h covers p
		}
		// Split p in halves and keep subtracting from each.
		lo, hi := halves(p)
		return append(Subtract(lo, holes), Subtract(hi, holes)...)
	}
	return []netip.Prefix{p}
}

// halves splits p (not a single address) into its two halves.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	b[(bits-1)/8] |= 0x80 >> ((bits - 1) % 8)
	a, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(a, bits)
}
