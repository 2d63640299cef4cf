package netguard

import (
	"net/netip"
)

// Class is what kind of address an IP is, as far as leaving the cluster is
// concerned. Every class but ClassPublic is blocked unless listed or
// allowed. The values are short, stable words: they appear in decision
// details and as metric label values.
type Class string

// Address classes.
const (
	// ClassPublic: a globally routable address; the gateway may connect.
	ClassPublic Class = "public"
	// ClassUnspecified: 0.0.0.0/8 ("this network") and ::.
	ClassUnspecified Class = "unspecified"
	// ClassLoopback: 127.0.0.0/8 and ::1, the gateway's own host.
	ClassLoopback Class = "loopback"
	// ClassPrivate: RFC 1918 (10/8, 172.16/12, 192.168/16), where pod,
	// service and node addresses live, and NAT64's local-use prefix.
	ClassPrivate Class = "private"
	// ClassShared: 100.64.0.0/10, carrier-grade NAT (also used by some
	// clouds and overlay networks for internal addresses).
	ClassShared Class = "shared"
	// ClassLinkLocal: 169.254.0.0/16 and fe80::/10, where cloud metadata
	// services answer (169.254.169.254, fd00:ec2::254 is ULA).
	ClassLinkLocal Class = "link_local"
	// ClassUniqueLocal: fc00::/7 (ULA) and the deprecated site-local
	// fec0::/10: IPv6's private ranges.
	ClassUniqueLocal Class = "unique_local"
	// ClassMulticast: 224.0.0.0/4 and ff00::/8.
	ClassMulticast Class = "multicast"
	// ClassBroadcast: 255.255.255.255.
	ClassBroadcast Class = "broadcast"
	// ClassReserved: 240.0.0.0/4 (future use) and 100::/64 (discard).
	ClassReserved Class = "reserved"
	// ClassInvalid: not an IP address at all.
	ClassInvalid Class = "invalid"
)

// Blocked reports whether c is a class the gateway refuses by default.
func (c Class) Blocked() bool { return c != ClassPublic }

// Embedding forms: how an IPv6 address carries the IPv4 address it was
// judged by.
const (
	FormMapped     = "ipv4-mapped"     // ::ffff:a.b.c.d
	FormCompatible = "ipv4-compatible" // ::a.b.c.d (deprecated)
	FormTranslated = "ipv4-translated" // ::ffff:0:a.b.c.d (SIIT)
	FormNAT64      = "nat64"           // 64:ff9b::a.b.c.d
	Form6to4       = "6to4"            // 2002:aabb:ccdd::/48
	FormTeredo     = "teredo"          // 2001:0::/32, server and (inverted) client
)

// Classification is the verdict of Classify on one address.
type Classification struct {
	// Class is the address's class; for an embedding, the class of the
	// blocked IPv4 address it carries (or ClassPublic).
	Class Class
	// Form names the IPv6 form that carries an IPv4 address, if any.
	Form string
	// Embedded is the IPv4 address the verdict is about, for an
	// embedding; invalid otherwise.
	Embedded netip.Addr
}

// Blocked reports whether the address is refused by default.
func (c Classification) Blocked() bool { return c.Class.Blocked() }

// String renders the verdict for people: "loopback", "6to4 of 10.0.0.1
// (private)".
func (c Classification) String() string {
	if c.Form == "" {
		return string(c.Class)
	}
	return c.Form + " of " + c.Embedded.String() + " (" + string(c.Class) + ")"
}

// range4 and range6 are the special-purpose ranges, each with the class it
// belongs to. Anything outside them is public. The embeddings of IPv4 in
// IPv6 are decoded by Classify, not listed here.
var range4 = []classRange{
	{netip.MustParsePrefix("0.0.0.0/8"), ClassUnspecified},        // "this network" (RFC 791); 0.0.0.0 reaches the local host
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},           // RFC 1918
	{netip.MustParsePrefix("100.64.0.0/10"), ClassShared},         // carrier-grade NAT (RFC 6598)
	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},         // the gateway's own host
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},     // link-local; cloud metadata at 169.254.169.254
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},        // RFC 1918
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},       // RFC 1918
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},        // multicast
	{netip.MustParsePrefix("255.255.255.255/32"), ClassBroadcast}, // limited broadcast (before 240/4: more specific)
	{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},         // reserved for future use
}

var range6 = []classRange{
	{netip.MustParsePrefix("::/128"), ClassUnspecified},
	{netip.MustParsePrefix("::1/128"), ClassLoopback},
	{netip.MustParsePrefix("64:ff9b:1::/48"), ClassPrivate}, // NAT64 local use (RFC 8215): a private translator
	{netip.MustParsePrefix("100::/64"), ClassReserved},      // discard-only (RFC 6666)
	{netip.MustParsePrefix("fc00::/7"), ClassUniqueLocal},   // ULA; AWS metadata at fd00:ec2::254
	{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},    // link-local
	{netip.MustParsePrefix("fec0::/10"), ClassUniqueLocal},  // site-local (deprecated, RFC 3879)
	{netip.MustParsePrefix("ff00::/8"), ClassMulticast},     // multicast
}

// The IPv6 prefixes that carry an IPv4 address.
var (
	prefixMapped     = netip.MustParsePrefix("::ffff:0:0/96")
	prefixCompatible = netip.MustParsePrefix("::/96")
	prefixTranslated = netip.MustParsePrefix("::ffff:0:0:0/96")
	prefixNAT64      = netip.MustParsePrefix("64:ff9b::/96")
	prefix6to4       = netip.MustParsePrefix("2002::/16")
	prefixTeredo     = netip.MustParsePrefix("2001::/32")
)

type classRange struct {
	prefix netip.Prefix
	class  Class
}

// Classify says what kind of address ip is. An IPv6 address that carries an
// IPv4 address is judged by the IPv4 address: IPv4-mapped, IPv4-compatible
// and IPv4-translated forms, NAT64 (64:ff9b::/96), 6to4 (2002::/16, the
// IPv4 address in bits 16-47) and Teredo (2001::/32: the server's address
// in bits 32-63 and the client's, inverted, in the last 32 bits; blocked
// when either is). A zone is ignored.
func Classify(ip netip.Addr) Classification {
	if !ip.IsValid() {
		return Classification{Class: ClassInvalid}
	}
	ip = ip.WithZone("")
	if ip.Is4() {
		return Classification{Class: class4(ip)}
	}
	b := ip.As16()
	v4 := func(at int) netip.Addr { return netip.AddrFrom4([4]byte{b[at], b[at+1], b[at+2], b[at+3]}) }
	embedded := func(form string, a netip.Addr) Classification {
		return Classification{Class: class4(a), Form: form, Embedded: a}
	}
	switch {
	case prefixMapped.Contains(ip):
		return embedded(FormMapped, v4(12))
	case ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback():
		// Inside ::/96, but IPv6's own unspecified and loopback addresses.
		return Classification{Class: class6(ip)}
	case prefixCompatible.Contains(ip):
		return embedded(FormCompatible, v4(12))
	case prefixTranslated.Contains(ip):
		return embedded(FormTranslated, v4(12))
	case prefixNAT64.Contains(ip):
		return embedded(FormNAT64, v4(12))
	case prefix6to4.Contains(ip):
		return embedded(Form6to4, v4(2))
	case prefixTeredo.Contains(ip):
		server := v4(4)
		if c := class4(server); c.Blocked() {
			return Classification{Class: c, Form: FormTeredo, Embedded: server}
		}
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return embedded(FormTeredo, client)
	}
	return Classification{Class: class6(ip)}
}

func class4(ip netip.Addr) Class {
	for _, r := range range4 {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	return ClassPublic
}

func class6(ip netip.Addr) Class {
	for _, r := range range6 {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	return ClassPublic
}

// BlockedPrefixes are CIDR ranges whose union is every address Classify
// blocks, for filters that can only match ranges (Envoy's RBAC on the
// resolved upstream address). The IPv4 ranges appear in every IPv6 form
// that carries them at a fixed place. Teredo, whose client address sits in
// the last 32 bits behind the server's, cannot be cut into ranges: the
// whole of 2001::/32 is listed, so a range filter refuses some Teredo
// addresses that Classify would allow. The list is sorted and fixed.
func BlockedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range range4 {
		if r.class == ClassBroadcast {
			continue // inside 240.0.0.0/4
		}
		out = append(out, r.prefix)
		v4 := r.prefix.Addr().As4()
		for _, base := range []netip.Prefix{prefixMapped, prefixCompatible, prefixTranslated, prefixNAT64} {
			b := base.Addr().As16()
			copy(b[12:], v4[:])
			out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), 96+r.prefix.Bits()))
		}
		b := prefix6to4.Addr().As16()
		copy(b[2:6], v4[:])
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), 16+r.prefix.Bits()))
	}
	for _, r := range range6 {
		if r.prefix.Bits() == 128 && prefixCompatible.Contains(r.prefix.Addr()) {
			continue // :: and ::1 are inside the compatible form of 0.0.0.0/8
		}
		out = append(out, r.prefix)
	}
	out = append(out, prefixTeredo)
	sortPrefixes(out)
	return out
}
