package dnsproxy

import (
	"hash/fnv"
	"math/big"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/egressd/egressd/serviceentry"
)

// snapshot is what the query path reads through one atomic pointer: the
// allowlist and, for each of its hosts, how to answer it. It is built once
// per SetAllowlist and never changed.
type snapshot struct {
	allow *serviceentry.Allowlist
	plans map[*serviceentry.Host]*hostPlan
	vips  int // hosts with an allocated VIP
	// endpoints (resolver mode) are the endpoint names of the entries the
	// gateway resolves by DNS (canonical), with their entry's plan.
	endpoints map[string]*hostPlan
}

// How a host's A and AAAA queries are answered.
const (
	sourceGateway  = "gateway"  // the gateway's addresses
	sourceStatic   = "static"   // the ServiceEntry's own addresses
	sourceVIP      = "vip"      // an auto-allocated VIP
	sourceUpstream = "upstream" // resolved upstream, through the rebinding guard
)

// hostPlan says how to answer one allowed host.
type hostPlan struct {
	// entry is "namespace/name" of the ServiceEntry that decides the
	// answer (for decisions).
	entry string
	// source is one of the source* constants.
	source string
	// v4 and v6 are the synthesised answers (all sources but upstream).
	v4, v6 []net.IP
	// listed are the addresses the host's ServiceEntries list (addresses
	// and endpoint IPs); the rebinding guard lets them through.
	listed []netip.Prefix
}

// synthesised reports whether A and AAAA answers are made locally.
func (p *hostPlan) synthesised() bool { return p.source != sourceUpstream }

// buildSnapshot compiles the answer plan of every host of a.
func buildSnapshot(c *config, a *serviceentry.Allowlist) *snapshot {
	snap := &snapshot{allow: a, plans: make(map[*serviceentry.Host]*hostPlan, len(a.Hosts()))}
	if c.Mode == ModeResolver {
		snap.endpoints = map[string]*hostPlan{}
		for _, h := range a.Hosts() {
			p := planHost(c, h)
			snap.plans[h] = p
			for _, hp := range h.Ports {
				if hp.Entry == nil || hp.Entry.Resolution == serviceentry.ResolutionStatic {
					continue
				}
				for _, ep := range hp.Entry.Endpoints {
					if _, err := netip.ParseAddr(ep.Address); err == nil || ep.Address == "" {
						continue
					}
					name := dns.CanonicalName(ep.Address)
					if _, ok := snap.endpoints[name]; !ok {
						snap.endpoints[name] = &hostPlan{entry: hp.Entry.Ref.String(), source: sourceUpstream, listed: listedOf(hp.Entry)}
					}
				}
			}
		}
		return snap
	}
	var vipHosts []*serviceentry.Host // sorted by name, as Hosts() is
	for _, h := range a.Hosts() {
		p := planHost(c, h)
		snap.plans[h] = p
		if p.source == sourceVIP {
			vipHosts = append(vipHosts, h)
		}
	}
	names := make([]string, len(vipHosts))
	for i, h := range vipHosts {
		names[i] = h.Name
	}
	vips := allocateVIPs(c.VIPRange, names)
	for _, h := range vipHosts {
		p := snap.plans[h]
		vip, ok := vips[h.Name]
		if !ok {
			// The range is full: steer this host to the gateway instead.
			p.source = sourceGateway
			p.v4, p.v6 = ipList(c.gateway4), ipList(c.gateway6)
			continue
		}
		snap.vips++
		if vip.Is4() {
			p.v4 = []net.IP{vip.AsSlice()}
		} else {
			p.v6 = []net.IP{vip.AsSlice()}
		}
	}
	return snap
}

// planHost decides how to answer host h (the VIP itself is allocated later,
// over every host at once).
//
//  1. A ServiceEntry with single-IP addresses that is STATIC, or that the
//     gateway matches by destination address (a TCP-class port), answers
//     those addresses, in both modes.
//  2. A host whose ports are all TCP-class and whose ServiceEntries list
//     only CIDR ranges is resolved upstream: the client must connect to a
//     real address inside the range for the gateway to match it. The
//     rebinding guard lets addresses inside the ranges through.
//  3. Gateway mode: a host whose ports are all TCP-class, without addresses,
//     gets a VIP; every other host gets the gateway's addresses.
//  4. Forward mode: resolved upstream.
func planHost(c *config, h *serviceentry.Host) *hostPlan {
	p := &hostPlan{}
	if len(h.Ports) > 0 {
		p.entry = h.Ports[0].Entry.Ref.String()
	}
	var static []netip.Addr
	allTCP, anyAddresses := true, false
	seen := map[*serviceentry.Entry]bool{}       // listed addresses collected
	staticSeen := map[*serviceentry.Entry]bool{} // static addresses collected
	for _, hp := range h.Ports {
		tcp := hp.Protocol.Class() == serviceentry.ClassTCP
		allTCP = allTCP && tcp
		e := hp.Entry
		if e == nil {
			continue
		}
		if len(e.Addresses) > 0 {
			anyAddresses = true
		}
		if (e.Resolution == serviceentry.ResolutionStatic || tcp) && !staticSeen[e] {
			staticSeen[e] = true
			first := len(static) == 0
			for _, pfx := range e.Addresses {
				if pfx.IsSingleIP() && !containsAddr(static, pfx.Addr()) {
					static = append(static, pfx.Addr())
				}
			}
			if first && len(static) > 0 {
				p.entry = e.Ref.String()
			}
		}
		if !seen[e] {
			p.listed = append(p.listed, listedOf(e)...)
		}
		seen[e] = true
	}
	switch {
	case c.Mode == ModeResolver:
		// The gateway connects to the real addresses.
		p.source = sourceUpstream
	case len(static) > 0:
		p.source = sourceStatic
		for _, ip := range static {
			if ip.Unmap().Is4() {
				p.v4 = append(p.v4, ip.Unmap().AsSlice())
			} else {
				p.v6 = append(p.v6, ip.AsSlice())
			}
		}
	case allTCP && anyAddresses:
		p.source = sourceUpstream
	case c.Mode == ModeGateway && allTCP:
		p.source = sourceVIP
	case c.Mode == ModeGateway:
		p.source = sourceGateway
		p.v4, p.v6 = ipList(c.gateway4), ipList(c.gateway6)
	default:
		p.source = sourceUpstream
	}
	return p
}

// listedOf returns the ranges entry e lists: its addresses and the IPs of
// its endpoints. The guard lets addresses inside them through.
func listedOf(e *serviceentry.Entry) []netip.Prefix {
	out := append([]netip.Prefix(nil), e.Addresses...)
	for _, ep := range e.Endpoints {
		if ip, err := netip.ParseAddr(ep.Address); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		}
	}
	return out
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

func ipList(addrs []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.AsSlice())
	}
	return out
}

// hostBits is the number of host bits of p, capped at 62 so that offsets
// fit an int64 comfortably.
func hostBits(p netip.Prefix) int {
	b := p.Addr().BitLen() - p.Bits()
	if b > 62 {
		b = 62
	}
	return b
}

// allocateVIPs gives each name (in the order given, which callers keep
// sorted) an address in r: the home slot is an FNV-1a hash of the name;
// on a collision the next free slot is taken (linear probing). The first
// and last address of the range are never used. The result depends only on
// r and the set of names, so every replica, and every reload with the same
// hosts, hands out the same VIPs; a host only moves when a host sorted
// before it collides into its slot. Names that find the range full get no
// VIP.
func allocateVIPs(r netip.Prefix, names []string) map[string]netip.Addr {
	r = r.Masked()
	slots := uint64(1)<<hostBits(r) - 2 // usable offsets 1..slots
	out := make(map[string]netip.Addr, len(names))
	taken := make(map[uint64]bool, len(names))
	for _, name := range names {
		if uint64(len(taken)) >= slots {
			break
		}
		off := homeSlot(name, slots)
		for taken[off] {
			off = off%slots + 1
		}
		taken[off] = true
		out[name] = addOffset(r.Addr(), off)
	}
	return out
}

// homeSlot maps name to an offset in 1..slots.
func homeSlot(name string, slots uint64) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(strings.ToLower(name)))
	return h.Sum64()%slots + 1
}

// addOffset returns base + off.
func addOffset(base netip.Addr, off uint64) netip.Addr {
	b := base.AsSlice()
	n := new(big.Int).SetBytes(b)
	n.Add(n, new(big.Int).SetUint64(off))
	out := make([]byte, len(b))
	n.FillBytes(out)
	a, _ := netip.AddrFromSlice(out)
	return a
}
