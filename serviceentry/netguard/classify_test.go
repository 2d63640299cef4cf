package netguard

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The IPv4 address of every special-purpose range, and a public one; each
// is checked bare and in every IPv6 form that carries an IPv4 address.
var v4Table = []struct {
	addr  string
	class Class
}{
	{"0.0.0.0", ClassUnspecified},
	{"0.1.2.3", ClassUnspecified},
	{"10.0.0.1", ClassPrivate},
	{"10.255.255.255", ClassPrivate},
	{"100.64.0.1", ClassShared},
	{"100.127.255.254", ClassShared},
	{"127.0.0.1", ClassLoopback},
	{"127.255.0.9", ClassLoopback},
	{"169.254.169.254", ClassLinkLocal}, // cloud metadata
	{"169.254.0.1", ClassLinkLocal},
	{"172.16.0.1", ClassPrivate},
	{"172.31.255.255", ClassPrivate},
	{"192.168.1.1", ClassPrivate},
	{"224.0.0.1", ClassMulticast},
	{"239.255.255.250", ClassMulticast},
	{"240.0.0.1", ClassReserved},
	{"240.240.0.5", ClassReserved}, // the DNS proxy's default VIP range: never an upstream
	{"255.255.255.255", ClassBroadcast},
	// Public neighbours of the ranges above.
	{"1.1.1.1", ClassPublic},
	{"8.8.8.8", ClassPublic},
	{"9.255.255.255", ClassPublic},
	{"11.0.0.0", ClassPublic},
	{"100.63.255.255", ClassPublic},
	{"100.128.0.0", ClassPublic},
	{"126.255.255.255", ClassPublic},
	{"128.0.0.0", ClassPublic},
	{"169.253.255.255", ClassPublic},
	{"172.15.255.255", ClassPublic},
	{"172.32.0.0", ClassPublic},
	{"192.167.255.255", ClassPublic},
	{"192.169.0.0", ClassPublic},
	{"198.18.0.1", ClassPublic}, // benchmarking range: where e2e network namespaces live
	{"223.255.255.255", ClassPublic},
}

// teredo builds a Teredo address: server IPv4 in bits 32-63, the client's
// inverted in the last 32 bits.
func teredo(server, client string) netip.Addr {
	s, c := netip.MustParseAddr(server).As4(), netip.MustParseAddr(client).As4()
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	copy(b[4:8], s[:])
	b[8], b[9] = 0x80, 0x00   // flags
	b[10], b[11] = 0xfa, 0xce // obfuscated port
	for i := range 4 {
		b[12+i] = ^c[i]
	}
	return netip.AddrFrom16(b)
}

// forms returns a in every IPv6 form that carries it.
func forms(a string) map[string]netip.Addr {
	v4 := netip.MustParseAddr(a).As4()
	put := func(prefix string, at int) netip.Addr {
		b := netip.MustParseAddr(prefix).As16()
		copy(b[at:at+4], v4[:])
		return netip.AddrFrom16(b)
	}
	return map[string]netip.Addr{
		FormMapped:     put("::ffff:0:0", 12),
		FormCompatible: put("::", 12),
		FormTranslated: put("::ffff:0:0:0", 12),
		FormNAT64:      put("64:ff9b::", 12),
		Form6to4:       put("2002::", 2),
		FormTeredo:     teredo("65.54.227.120", a), // a public Teredo server, a as the client
	}
}

func TestClassifyIPv4AndEveryEmbedding(t *testing.T) {
	for _, tc := range v4Table {
		ip := netip.MustParseAddr(tc.addr)
		if got := Classify(ip); got.Class != tc.class || got.Form != "" {
			t.Errorf("Classify(%s) = %+v, want %s", tc.addr, got, tc.class)
		}
		for form, ip6 := range forms(tc.addr) {
			if form == FormCompatible && (tc.addr == "0.0.0.0" || tc.addr == "0.0.0.1") {
				continue // :: and ::1 are IPv6's own
			}
			got := Classify(ip6)
			if got.Class != tc.class || got.Form != form || got.Embedded != ip {
				t.Errorf("Classify(%s, %s of %s) = %+v, want %s", ip6, form, tc.addr, got, tc.class)
			}
		}
	}
}

func TestClassifyTeredoServer(t *testing.T) {
	// A blocked server address is refused even with a public client.
	got := Classify(teredo("10.0.0.1", "8.8.8.8"))
	if got.Class != ClassPrivate || got.Form != FormTeredo || got.Embedded != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("Teredo via a private server: %+v", got)
	}
	// The RFC 4380 example: server 65.54.227.120, client 192.0.2.45.
	if got := Classify(netip.MustParseAddr("2001:0:4136:e378:8000:63bf:3fff:fdd2")); got.Blocked() || got.Embedded != netip.MustParseAddr("192.0.2.45") {
		t.Errorf("RFC 4380 example: %+v", got)
	}
}

func TestClassifyIPv6(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		class Class
	}{
		{"::", ClassUnspecified},
		{"::1", ClassLoopback},
		{"fe80::1", ClassLinkLocal},
		{"fe80::1%eth0", ClassLinkLocal},
		{"febf:ffff::1", ClassLinkLocal},
		{"fc00::1", ClassUniqueLocal},
		{"fd00:ec2::254", ClassUniqueLocal}, // AWS metadata over IPv6
		{"fdff:ffff::1", ClassUniqueLocal},
		{"fec0::1", ClassUniqueLocal},
		{"ff02::1", ClassMulticast},
		{"ff0e::1", ClassMulticast},
		{"64:ff9b:1::a00:1", ClassPrivate},
		{"100::1", ClassReserved},
		// Public.
		{"2001:4860:4860::8888", ClassPublic},
		{"2606:4700:4700::1111", ClassPublic},
		{"2001:db8::1", ClassPublic},
		{"fbff:ffff::1", ClassPublic},
		{"fe00::1", ClassPublic},
		{"100:0:0:1::1", ClassPublic},
	} {
		if got := Classify(netip.MustParseAddr(tc.addr)); got.Class != tc.class {
			t.Errorf("Classify(%s) = %+v, want %s", tc.addr, got, tc.class)
		}
	}
	if got := Classify(netip.Addr{}); got.Class != ClassInvalid || !got.Blocked() {
		t.Errorf("zero address: %+v", got)
	}
}

func TestClassificationString(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":            "loopback",
		"2002:a00:1::1":        "6to4 of 10.0.0.1 (private)",
		"64:ff9b::a9fe:a9fe":   "nat64 of 169.254.169.254 (link_local)",
		"::ffff:127.0.0.1":     "ipv4-mapped of 127.0.0.1 (loopback)",
		"2001:4860:4860::8888": "public",
		"2002:808:808::1":      "6to4 of 8.8.8.8 (public)",
	} {
		if got := Classify(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// TestBlockedPrefixesAgreeWithClassify: the ranges handed to Envoy block
// exactly what Classify blocks, but for Teredo, where the ranges block the
// whole prefix.
func TestBlockedPrefixesAgreeWithClassify(t *testing.T) {
	prefixes := BlockedPrefixes()
	inPrefixes := func(ip netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	var samples []netip.Addr
	for _, tc := range v4Table {
		samples = append(samples, netip.MustParseAddr(tc.addr))
		for _, ip := range forms(tc.addr) {
			samples = append(samples, ip)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b4 [4]byte
		var b16 [16]byte
		for i := range b4 {
			b4[i] = byte(rng.IntN(256))
		}
		for i := range b16 {
			b16[i] = byte(rng.IntN(256))
		}
		samples = append(samples, netip.AddrFrom4(b4))
		samples = append(samples, netip.AddrFrom16(b16))
		// Random addresses inside the interesting IPv6 prefixes.
		for _, base := range []string{"::ffff:0:0", "::", "64:ff9b::", "2002::", "fc00::", "fe80::"} {
			b := netip.MustParseAddr(base).As16()
			start := 12
			if base == "2002::" {
				start = 2
			}
			if base == "fc00::" || base == "fe80::" {
				start = 2
			}
			for i := start; i < 16; i++ {
				b[i] = byte(rng.IntN(256))
			}
			samples = append(samples, netip.AddrFrom16(b))
		}
	}
	for _, ip := range samples {
		c := Classify(ip)
		in := inPrefixes(ip)
		if c.Form == FormTeredo {
			if !in {
				t.Errorf("Teredo %s is not in the blocked prefixes", ip)
			}
			continue
		}
		if in != c.Blocked() {
			t.Errorf("%s: Classify says %s, prefixes say blocked=%v", ip, c, in)
		}
	}
	for i := 1; i < len(prefixes); i++ {
		if comparePrefixes(prefixes[i-1], prefixes[i]) >= 0 {
			t.Fatalf("prefixes not sorted or duplicated at %d: %s, %s", i, prefixes[i-1], prefixes[i])
		}
	}
}

func ExampleClassify() {
	for _, s := range []string{"169.254.169.254", "2002:7f00:1::", "93.184.216.34"} {
		fmt.Println(s, Classify(netip.MustParseAddr(s)))
	}
	// Output:
	// 169.254.169.254 link_local
	// 2002:7f00:1:: 6to4 of 127.0.0.1 (loopback)
	// 93.184.216.34 public
}
