package xds

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// Options are the gateway settings that are not in the allowlist.
type Options struct {
	// ListenAddress is the IP the gateway's listeners bind to.
	ListenAddress string
	// PortOffset is added to every service port to get the listener port,
	// so a gateway without privileges can serve port 80 on 10080.
	PortOffset uint32
	// Outbound is what happens to unlisted destinations.
	Outbound serviceentry.OutboundMode
	// AccessLogPath is the file Envoy writes its own JSON access log to;
	// empty: none (egressd logs decisions itself, from ALSCluster).
	AccessLogPath string
	// ALSCluster is the bootstrap cluster of egressd's gRPC Access Log
	// Service (the control plane's own cluster); every listener sends its
	// access log entries there. Empty: no gRPC access logs.
	ALSCluster string
	// SummarizeAllowed counts the allowed HTTP requests of the plaintext
	// listeners (listed host, 2xx, no response flag) in Envoy's stats
	// instead of sending each to the access log service: the gateway's
	// stats sink reports them to egressd every flush, as summaries (see
	// allowedSummary). Denials, redirects, errors and the mesh listener's
	// requests are still reported one by one. It needs a bootstrap with
	// egressd's metrics service sink (envoy.BootstrapConfig).
	SummarizeAllowed bool
	// AllowedSample, with SummarizeAllowed, still reports this percentage
	// of the summarized requests one by one (0 to 100).
	AllowedSample float64
	// DNSResolvers ("ip:port") are the resolvers Envoy uses for DNS
	// clusters and dynamic forwarding: egressd's gateway resolver, which
	// checks every address it hands out (dnsproxy.ModeResolver). Empty
	// means the system's, which nothing guards: only for tests.
	DNSResolvers []string
	// Guard is the rule for the addresses the gateway connects to: the
	// ranges the operator allows (Guard.Allow) and the gateway's own
	// addresses (Guard.Self, to which ListenAddress is added unless it is
	// unspecified). See guard.go.
	Guard netguard.Policy
	// Scope is the gateway's place in the mesh (see gateway.Options.Scope).
	Scope *serviceentry.PolicyScope
	// AuditNamespaces: see gateway.Options.AuditNamespaces.
	AuditNamespaces []string
	// OwnPorts are further ports the gateway's own addresses serve
	// (Envoy's admin interface, egressd's listeners when it runs beside
	// Envoy): like the listeners, never an upstream.
	OwnPorts []uint32
	// ConnectTimeout bounds upstream connection setup.
	ConnectTimeout time.Duration
	// AlwaysHTTPPorts and AlwaysTLSPorts get a listener even when no entry
	// uses them, so denials on the common ports are answered and logged
	// instead of refused silently. Defaults: 80 and 443.
	AlwaysHTTPPorts []uint32
	AlwaysTLSPorts  []uint32
	// SecretNames names the SDS secrets of TLS origination; required when
	// a DestinationRule asks for it.
	SecretNames SecretNames
	// ODCDSCluster, when set, is the bootstrap cluster of the control
	// plane, from which Envoy discovers the clusters of listed hosts on
	// demand (see ondemand.go): it holds those in use, not every one.
	// Only the gateway's own clusters stay in the CDS every gateway holds;
	// the SDS secrets only on-demand clusters name are not waited for.
	ODCDSCluster string
	// SourceScope scopes the callers of the plaintext ports by their
	// source address (see sourcescope.go): on with a pod index (the
	// Kubernetes source), whose pods Server.SetPods keeps current.
	SourceScope bool
	// ProxyPort, when not 0, adds the explicit proxy listener (HTTPS_PROXY
	// clients: CONNECT and absolute URIs) on that service port, bound at
	// ProxyPort + PortOffset.
	ProxyPort uint32
	// ProxyIdentities are the proxy's clients outside the mesh, named by
	// Proxy-Authorization; with ProxyRequireIdentity a request that names
	// none is refused 407.
	ProxyIdentities      []ProxyIdentity
	ProxyRequireIdentity bool
	// UpstreamProxy, when set, chains the gateway's TLS passthrough hosts
	// through an upstream HTTP CONNECT proxy (a corporate proxy): their
	// clusters connect to it and send "CONNECT <host>:<port>".
	UpstreamProxy *UpstreamProxy
	// Mesh, when set, adds the mesh listener (mutual TLS from mesh
	// callers, AuthorizationPolicy per caller).
	Mesh *MeshOptions
}

// UpstreamProxy is an upstream HTTP CONNECT proxy (Options.UpstreamProxy).
type UpstreamProxy struct {
	// Address is the proxy's address: the operator's, not checked by
	// the address guard.
	Address netip.AddrPort
	// Authorization, when set, is sent as Proxy-Authorization with every
	// CONNECT ("Basic <base64 user:password>").
	Authorization string
}

// DefaultOptions returns the options used when a field is left empty.
func DefaultOptions() Options {
	return Options{
		ListenAddress:   "0.0.0.0",
		Outbound:        serviceentry.RegistryOnly,
		ConnectTimeout:  5 * time.Second,
		AlwaysHTTPPorts: []uint32{80},
		AlwaysTLSPorts:  []uint32{443},
	}
}

// withDefaults fills empty fields from DefaultOptions and checks the rest.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.ListenAddress == "" {
		o.ListenAddress = d.ListenAddress
	}
	listen, err := netip.ParseAddr(o.ListenAddress)
	if err != nil {
		return o, fmt.Errorf("listen address %q: must be an IP address", o.ListenAddress)
	}
	self := netguard.Normalize(o.Guard.Self)
	if !listen.IsUnspecified() {
		listen = listen.Unmap()
		self = netguard.Normalize(append(self, netip.PrefixFrom(listen, listen.BitLen())))
	}
	o.Guard = netguard.Policy{Allow: netguard.Normalize(o.Guard.Allow), Self: self}
	if o.Outbound == "" {
		o.Outbound = d.Outbound
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.AlwaysHTTPPorts == nil {
		o.AlwaysHTTPPorts = d.AlwaysHTTPPorts
	}
	if o.AlwaysTLSPorts == nil {
		o.AlwaysTLSPorts = d.AlwaysTLSPorts
	}
	if o.Mesh != nil {
		m := *o.Mesh
		if m.Port == 0 {
			m.Port = 15443
		}
		if m.CertSecret == "" || m.BundleSecret == "" {
			return o, fmt.Errorf("mesh listener: the gateway certificate and trust bundle secrets must be named")
		}
		o.Mesh = &m
	}
	if o.AllowedSample < 0 || o.AllowedSample > 100 {
		return o, fmt.Errorf("allowed sample %v: a percentage from 0 to 100", o.AllowedSample)
	}
	for _, r := range o.DNSResolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return o, fmt.Errorf("dns resolver %q: must be ip:port", r)
		}
	}
	return o, nil
}
