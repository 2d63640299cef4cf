package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/egressd/egressd/dnsproxy"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// guardPolicy is the gateway's address rule from the flags: the ranges
// the operator allows, and the gateway's own addresses (see
// selfAddresses).
func guardPolicy(cfg *Config) (*netguard.Policy, error) {
	self, err := selfAddresses(cfg)
	if err != nil {
		return nil, err
	}
	return &netguard.Policy{Allow: netguard.Normalize(cfg.UpstreamAllow), Self: self}, nil
}

// selfAddresses are the addresses that are the gateway itself: its listen
// address, the addresses the DNS proxy gives out for it, and
// --gateway-self-cidrs. A gateway that listens on every address (0.0.0.0
// or ::) is all of its host's addresses: the loopback ranges, and for a
// managed Envoy every address of this host's interfaces.
func selfAddresses(cfg *Config) ([]netip.Prefix, error) {
	var out []netip.Prefix
	single := func(ip netip.Addr) {
		ip = ip.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	listen := netip.MustParseAddr(cfg.GatewayAddress) // checked by NewConfig
	if !listen.IsUnspecified() {
		single(listen)
	} else {
		out = append(out, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		if cfg.Envoy == envoyManaged {
			addrs, err := net.InterfaceAddrs()
			if err != nil {
				return nil, fmt.Errorf("the gateway listens on %s: listing this host's addresses: %w", cfg.GatewayAddress, err)
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						single(ip)
					}
				}
			}
		}
	}
	for _, ip := range cfg.DNSGatewayIPs {
		single(ip)
	}
	out = append(out, cfg.GatewaySelf...)
	return netguard.Normalize(out), nil
}

// ownPorts are the ports of egressd and its managed Envoy besides the
// gateway's listeners: an endpoint on one of them at one of the gateway's
// own addresses would be the gateway's control plane or admin interface.
func ownPorts(cfg *Config) []uint32 {
	var out []uint32
	for _, a := range []string{cfg.EnvoyAdmin, cfg.XDSListen, cfg.AdminListen, cfg.DNSListen, cfg.GatewayResolverListen} {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n != 0 {
				out = append(out, uint32(n))
			}
		}
	}
	return out
}

// dnsUpstreams are the DNS proxy's upstream resolvers: --dns-upstream, else
// the nameservers of --dns-resolv-conf.
func dnsUpstreams(cfg *Config) ([]string, error) {
	if len(cfg.DNSUpstreams) > 0 {
		return cfg.DNSUpstreams, nil
	}
	rc, err := dns.ClientConfigFromFile(cfg.DNSUpstreamsFrom)
	if err != nil {
		return nil, fmt.Errorf("--dns-upstream not set and %s unreadable: %w", cfg.DNSUpstreamsFrom, err)
	}
	var out []string
	for _, s := range rc.Servers {
		out = append(out, net.JoinHostPort(s, rc.Port))
	}
	return out, nil
}

// newGatewayResolver is the resolver of the gateway's own lookups (see
// dnsproxy.ModeResolver), asking --gateway-dns, else the DNS proxy's
// upstreams.
func newGatewayResolver(cfg *Config, log *zap.Logger, reg prometheus.Registerer, policy *netguard.Policy, refusals *netguard.Ledger) (*dnsproxy.Server, error) {
	upstreams := cfg.DNSResolvers
	if len(upstreams) == 0 {
		var err error
		if upstreams, err = dnsUpstreams(cfg); err != nil {
			return nil, fmt.Errorf("gateway resolver: %w", err)
		}
	}
	return dnsproxy.New(dnsproxy.Config{
		Listen:           cfg.GatewayResolverListen,
		Mode:             dnsproxy.ModeResolver,
		Upstreams:        upstreams,
		Outbound:         cfg.Outbound,
		Guard:            policy,
		Ledger:           refusals,
		MetricsSubsystem: "gateway_dns",
		Log:              log.Named("gateway-resolver"),
		Registerer:       reg,
	})
}

// waitResolver waits until the gateway resolver serves and returns the
// address the gateway is to send its lookups to: advertised (a name is
// resolved now), else the address served.
func waitResolver(ctx context.Context, r *dnsproxy.Server, advertised string) (string, error) {
	select {
	case <-r.Ready():
	case <-ctx.Done():
		return "", fmt.Errorf("gateway resolver did not start: %w", context.Cause(ctx))
	}
	if advertised == "" {
		return r.Addr(), nil
	}
	host, port, _ := net.SplitHostPort(advertised) // checked by NewConfig
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), mustPort(port)).String(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("--gateway-resolver-address %s: %v", advertised, err)
	}
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return netip.AddrPortFrom(ip.Unmap(), mustPort(port)).String(), nil
		}
	}
	return netip.AddrPortFrom(ips[0], mustPort(port)).String(), nil
}

func mustPort(s string) uint16 {
	n, _ := strconv.ParseUint(s, 10, 16)
	return uint16(n)
}

// versionOf is a's version, "none" for nil.
func versionOf(a *serviceentry.Allowlist) string {
	if a == nil {
		return "none"
	}
	return a.Version()
}
