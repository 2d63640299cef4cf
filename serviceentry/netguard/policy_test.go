package netguard

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func prefixes(t *testing.T, items ...string) []netip.Prefix {
	t.Helper()
	ps, err := ParsePrefixes(items)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestPolicyCheck(t *testing.T) {
	p := &Policy{
		Allow: prefixes(t, "10.20.0.0/16"),
		Self:  prefixes(t, "10.20.0.7", "127.77.0.1"),
	}
	for _, tc := range []struct {
		name, addr string
		listed     []string
		allowed    bool
		reason     vocab.Reason
	}{
		{"public", "93.184.216.34", nil, true, ""},
		{"loopback", "127.0.0.1", nil, false, vocab.ReasonBlockedAddress},
		{"metadata", "169.254.169.254", nil, false, vocab.ReasonBlockedAddress},
		{"metadata over v6", "fd00:ec2::254", nil, false, vocab.ReasonBlockedAddress},
		{"private", "10.1.2.3", nil, false, vocab.ReasonBlockedAddress},
		{"private, listed by the entry", "10.1.2.3", []string{"10.1.0.0/16"}, true, ""},
		{"loopback, listed", "127.0.0.1", []string{"127.0.0.1"}, true, ""},
		{"operator-allowed range", "10.20.3.4", nil, true, ""},
		{"mapped form of an allowed range", "::ffff:10.20.3.4", nil, true, ""},
		{"nat64 form of a listed address", "64:ff9b::a01:203", []string{"10.1.2.3"}, true, ""},
		{"6to4 of loopback", "2002:7f00:1::", nil, false, vocab.ReasonBlockedAddress},
		{"the gateway's own address, inside the allowed range", "10.20.0.7", nil, false, vocab.ReasonForwardingLoop},
		{"the gateway's own address, listed by the entry", "127.77.0.1", []string{"127.0.0.0/8"}, false, vocab.ReasonForwardingLoop},
		{"the gateway's own address, mapped", "::ffff:127.77.0.1", nil, false, vocab.ReasonForwardingLoop},
		{"invalid", "", nil, false, vocab.ReasonBlockedAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ip netip.Addr
			if tc.addr != "" {
				ip = netip.MustParseAddr(tc.addr)
			}
			v := p.Check(ip, prefixes(t, tc.listed...))
			if v.Allowed != tc.allowed || v.Reason != tc.reason {
				t.Errorf("Check(%s, %v) = %+v, want allowed=%v reason=%q", tc.addr, tc.listed, v, tc.allowed, tc.reason)
			}
		})
	}
	var zero *Policy
	if v := zero.Check(netip.MustParseAddr("10.0.0.1"), nil); v.Allowed {
		t.Error("a nil policy must still block private addresses")
	}
}

func TestVerdictString(t *testing.T) {
	p := &Policy{Self: prefixes(t, "127.77.0.1")}
	for addr, want := range map[string]string{
		"127.0.0.1":  "127.0.0.1 (loopback)",
		"127.77.0.1": "127.77.0.1 (the gateway's own address)",
		"8.8.8.8":    "8.8.8.8",
	} {
		if got := p.Check(netip.MustParseAddr(addr), nil).String(); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.20.0.0/16", " 192.168.1.5 ", "fd00::/8", "::ffff:10.0.0.0/104", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.20.0.0/16", "192.168.1.5/32", "fd00::/8", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad range must fail")
	}
	if _, err := ParsePrefixes([]string{"example.com"}); err == nil {
		t.Error("a name must fail")
	}
}

func TestLedger(t *testing.T) {
	now := time.Now()
	l := NewLedger(time.Minute, 3)
	refusal := func(name string) Refusal {
		return Refusal{Name: name, At: now, Refused: []Verdict{(&Policy{}).Check(netip.MustParseAddr("127.0.0.1"), nil)}}
	}
	l.Refuse(refusal("A.example.test."))
	r, ok := l.Lookup("a.example.test", now)
	if !ok || r.Reason() != vocab.ReasonBlockedAddress || r.Detail() != "a.example.test resolved to 127.0.0.1 (loopback); the gateway does not connect there" {
		t.Fatalf("lookup: %+v %v", r, ok)
	}
	if _, ok := l.Lookup("a.example.test", now.Add(2*time.Minute)); ok {
		t.Error("an old refusal must be forgotten")
	}
	l.Resolved("a.example.test")
	if _, ok := l.Lookup("a.example.test", now); ok {
		t.Error("a name that resolved must be forgotten")
	}
	for _, n := range []string{"b", "c", "d", "e"} {
		l.Refuse(refusal(n))
	}
	if l.Len() != 3 {
		t.Errorf("capacity 3, holds %d", l.Len())
	}
	if _, ok := l.Lookup("b", now); ok {
		t.Error("the oldest name must be evicted first")
	}
	for _, n := range []string{"c", "d", "e"} {
		if _, ok := l.Lookup(n, now); !ok {
			t.Errorf("%s evicted too early", n)
		}
	}
	loop := Refusal{Name: "x", Refused: []Verdict{{Reason: vocab.ReasonBlockedAddress}, {Reason: vocab.ReasonForwardingLoop}}}
	if loop.Reason() != vocab.ReasonForwardingLoop {
		t.Error("a refusal with the gateway's own address is a forwarding loop")
	}
	var none *Ledger
	none.Refuse(refusal("x"))
	if _, ok := none.Lookup("x", now); ok {
		t.Error("a nil ledger holds nothing")
	}
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct {
		p     string
		holes []string
		want  []string
	}{
		{"10.0.0.0/8", nil, []string{"10.0.0.0/8"}},
		{"10.0.0.0/8", []string{"192.168.0.1/32"}, []string{"10.0.0.0/8"}},
		{"10.0.0.0/30", []string{"10.0.0.0/8"}, nil},
		{"10.0.0.0/30", []string{"10.0.0.0/30"}, nil},
		{"10.0.0.0/30", []string{"10.0.0.1/32"}, []string{"10.0.0.0/32", "10.0.0.2/31"}},
		{"10.0.0.0/24", []string{"10.0.0.128/25", "10.0.0.0/26"}, []string{"10.0.0.64/26"}},
		{"fd00::/126", []string{"fd00::3/128"}, []string{"fd00::/127", "fd00::2/128"}},
		{"10.0.0.0/8", []string{"fd00::/8"}, []string{"10.0.0.0/8"}},
	} {
		var got []string
		for _, p := range Subtract(netip.MustParsePrefix(tc.p), prefixes(t, tc.holes...)) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Subtract(%s, %v) = %v, want %v", tc.p, tc.holes, got, tc.want)
		}
	}
	// A /32 hole in a /8 leaves 24 ranges that cover all but the hole.
	rest := Subtract(netip.MustParsePrefix("10.0.0.0/8"), prefixes(t, "10.1.2.3"))
	if len(rest) != 24 {
		t.Errorf("%d ranges, want 24", len(rest))
	}
	for _, probe := range []string{"10.0.0.0", "10.1.2.2", "10.1.2.4", "10.255.255.255"} {
		found := false
		for _, p := range rest {
			found = found || p.Contains(netip.MustParseAddr(probe))
		}
		if !found {
			t.Errorf("%s lost", probe)
		}
	}
	for _, p := range rest {
		if p.Contains(netip.MustParseAddr("10.1.2.3")) {
			t.Errorf("%s holds the hole", p)
		}
	}
}
