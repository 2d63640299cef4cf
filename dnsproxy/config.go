package dnsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// Mode says how allowed names are answered.
type Mode string

// Answer modes.
const (
	// ModeGateway answers allowed names with the egress gateway's addresses
	// (or the ServiceEntry's own addresses, or a VIP), so that traffic is
	// steered through the gateway.
	ModeGateway Mode = "gateway"
	// ModeForward resolves allowed names upstream and returns the real
	// records, filtered by the rebinding guard.
	ModeForward Mode = "forward"
	// ModeResolver serves the gateway's own lookups (Envoy's DNS clusters
	// and dynamic forward proxy), never clients: the names the allowlist
	// gives the gateway reason to resolve (every name under ALLOW_ANY and
	// AUDIT) are resolved upstream, and every address in the answer goes
	// through Guard with the gateway's own addresses (Guard.Self) refused.
	// A name left without addresses is answered NOERROR with none, so the
	// gateway drops the addresses it held; the refusal goes to Ledger.
	// Pass-through zones do not apply, and no decisions are recorded: the
	// gateway reports the request or connection that needed the name.
	ModeResolver Mode = "resolver"
)

// ParseMode parses the mode of a DNS proxy for clients (gateway or
// forward), case-insensitively.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeGateway, ModeForward:
		return m, nil
	}
	return "", fmt.Errorf("unknown DNS mode %q: use %s or %s", s, ModeGateway, ModeForward)
}

// Defaults of Config.
const (
	DefaultListen    = "127.0.0.1:15053"
	DefaultTimeout   = 2 * time.Second
	DefaultCacheSize = 10000
)

// DefaultPassthroughZones are forwarded upstream unchanged.
var DefaultPassthroughZones = []string{"cluster.local."}

// DefaultVIPRange is the range auto-allocated VIPs come from.
var DefaultVIPRange = netip.MustParsePrefix("240.240.0.0/16")

// Config configures a Server. The zero value of every field but GatewayIPs
// (needed in gateway mode) has a working default.
type Config struct {
	// Listen is the address served over UDP and TCP, on the same port.
	// Port 0 picks a free port; Addr reports it. Default 127.0.0.1:15053.
	Listen string
	// Mode is ModeGateway (default) or ModeForward.
	Mode Mode
	// GatewayIPs answer allowed names in gateway mode: IPv4 addresses in A
	// answers, IPv6 in AAAA. A family without an address gets an empty
	// NOERROR answer.
	GatewayIPs []netip.Addr
	// Upstreams are resolvers ("ip:port", or "ip" for port 53) tried in
	// order; the next one is tried when one fails. Without upstreams every
	// query that needs one is answered SERVFAIL.
	Upstreams []string
	// Timeout bounds each attempt at one upstream. Default 2s.
	Timeout time.Duration
	// PassthroughZones are forwarded upstream unchanged, whatever the
	// allowlist says. Default ["cluster.local."]. An empty, non-nil slice
	// means none.
	PassthroughZones []string
	// Outbound is what happens to names no ServiceEntry lists:
	// REGISTRY_ONLY (default) refuses them, ALLOW_ANY forwards them.
	Outbound serviceentry.OutboundMode
	// RefuseRcode answers refused names: dns.RcodeNameError (NXDOMAIN,
	// default) or dns.RcodeRefused.
	RefuseRcode int
	// VIPRange is where hosts of TCP ServiceEntries without addresses get
	// their auto-allocated VIP (gateway mode). Default 240.240.0.0/16.
	VIPRange netip.Prefix
	// CacheSize bounds the response cache (entries). Default 10000; a
	// negative value disables the cache.
	CacheSize int
	// AllowPrivate turns the rebinding guard off. By default (false) the
	// guard drops upstream addresses in loopback, link-local (including
	// 169.254.169.254), private (RFC 1918, ULA), shared (100.64.0.0/10),
	// unspecified and multicast ranges from answers for allowed names that
	// are resolved by DNS, unless the ServiceEntry lists them: a DNS
	// rebinding and SSRF guard. (It is a negative flag so that the zero
	// Config keeps the guard on.)
	AllowPrivate bool
	// Guard decides which addresses upstream answers may carry (forward and
	// resolver modes, see netguard.Policy.Check): Guard.Allow are ranges the
	// operator allows, Guard.Self the gateway's own addresses. nil: every
	// non-public address is dropped unless the ServiceEntry lists it.
	Guard *netguard.Policy
	// Ledger receives, in resolver mode, every name whose answer lost
	// addresses to Guard (and forgets a name that resolves cleanly), so
	// the gateway's failed request can be reported with the address. nil:
	// not recorded.
	Ledger *netguard.Ledger
	// MetricsSubsystem names the metrics: egressd_<subsystem>_queries_total
	// and so on. Default "dns"; a second Server on the same registry needs
	// another (egressd's gateway resolver uses "gateway_dns").
	MetricsSubsystem string
	// Log receives operational lines, and one line per refusal when
	// OnDecision is nil (debug lines for the rest). Default: no logging.
	Log *zap.Logger
	// Registerer receives the metrics (metrics.go). nil: no metrics.
	Registerer prometheus.Registerer
	// OnDecision, when set, is called for every refusal, for every unlisted
	// name answered under AUDIT, for every answer whose CNAME chain leaves
	// the allowlist, and for every address the rebinding guard drops,
	// instead of logging them. It runs on the query path: it must not block.
	OnDecision func(Decision)
	// CallerNamespace, when set, names the namespace of the workload at a
	// client address (the Kubernetes source's pod index); false when
	// unknown. A known caller is then answered only the names its
	// namespace may reach: ServiceEntries exported to it, and the hosts
	// its Sidecar (or the root namespace's) lists; others are refused as
	// not_exported or sidecar_scope. An unknown caller is not scoped.
	CallerNamespace func(ip netip.Addr) (namespace string, ok bool)
	// RootNamespace is the mesh root namespace, for its Sidecar (default
	// serviceentry.DefaultRootNamespace).
	RootNamespace string
	// AuditNamespaces dry-run their Sidecar: a name a caller from one of
	// them may not reach by it is answered, and recorded as audit-deny
	// with reason sidecar_scope (exportTo is enforced all the same).
	AuditNamespaces []string
}

// config is a validated Config with defaults applied.
type config struct {
	Config
	gateway4, gateway6 []netip.Addr
	upstreams          []string
	zones              []string // canonical: lower case, fully qualified
	blockPrivate       bool
}

func (c Config) validate() (*config, error) {
	o := &config{Config: c}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return nil, fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	switch o.Mode {
	case "":
		o.Mode = ModeGateway
	case ModeGateway, ModeForward, ModeResolver:
	default:
		return nil, fmt.Errorf("mode %q: use %s, %s or %s", o.Mode, ModeGateway, ModeForward, ModeResolver)
	}
	for _, ip := range o.GatewayIPs {
		switch {
		case !ip.IsValid():
			return nil, errors.New("gateway IPs: an invalid (zero) address")
		case ip.Unmap().Is4():
			o.gateway4 = append(o.gateway4, ip.Unmap())
		default:
			o.gateway6 = append(o.gateway6, ip)
		}
	}
	if o.Mode == ModeGateway && len(o.GatewayIPs) == 0 {
		return nil, errors.New("gateway mode needs at least one gateway IP to answer allowed names with; set GatewayIPs, or use forward mode")
	}
	for _, u := range o.Upstreams {
		addr, err := parseUpstream(u)
		if err != nil {
			return nil, err
		}
		o.upstreams = append(o.upstreams, addr)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("timeout %s: must be positive", o.Timeout)
	}
	zones := o.PassthroughZones
	if zones == nil {
		zones = DefaultPassthroughZones
	}
	for _, z := range zones {
		if _, ok := dns.IsDomainName(z); !ok || z == "" {
			return nil, fmt.Errorf("pass-through zone %q is not a domain name", z)
		}
		o.zones = append(o.zones, dns.CanonicalName(z))
	}
	switch o.Outbound {
	case "":
		o.Outbound = serviceentry.RegistryOnly
	case serviceentry.RegistryOnly, serviceentry.AllowAny, serviceentry.Audit:
	default:
		return nil, fmt.Errorf("outbound mode %q: use %s, %s or %s", o.Outbound, serviceentry.RegistryOnly, serviceentry.AllowAny, serviceentry.Audit)
	}
	switch o.RefuseRcode {
	case 0:
		o.RefuseRcode = dns.RcodeNameError
	case dns.RcodeNameError, dns.RcodeRefused:
	default:
		return nil, fmt.Errorf("refuse rcode %d: use %d (NXDOMAIN) or %d (REFUSED)", o.RefuseRcode, dns.RcodeNameError, dns.RcodeRefused)
	}
	if !o.VIPRange.IsValid() {
		o.VIPRange = DefaultVIPRange
	}
	o.VIPRange = o.VIPRange.Masked()
	if hostBits(o.VIPRange) < 2 {
		return nil, fmt.Errorf("VIP range %s is too small: it needs at least 4 addresses", o.VIPRange)
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	// The gateway's resolver always guards: AllowPrivate is for clients.
	o.blockPrivate = !o.AllowPrivate || o.Mode == ModeResolver
	if o.MetricsSubsystem == "" {
		o.MetricsSubsystem = "dns"
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return o, nil
}

// parseUpstream accepts "ip:port" or a bare IP (port 53).
func parseUpstream(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("upstream %q: port 0", s)
		}
		return ap.String(), nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	return "", fmt.Errorf("upstream %q: want ip:port, such as 10.96.0.10:53 or [fd00::10]:53", s)
}
