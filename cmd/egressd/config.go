package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/dnsproxy"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// Envoy modes of `egressd run`.
const (
	envoyManaged  = "managed"
	envoyExternal = "external"
)

// Sources of `egressd run --source`.
const (
	sourceDir        = "dir"
	sourceKubernetes = "kubernetes"
)

// Config is the parsed command line of `egressd run`.
type Config struct {
	// Source is where the Istio resources come from: the --config folder
	// or the Kubernetes API.
	Source                  string
	Kubeconfig              string
	WatchNamespaces         []string
	LeaderElect             bool
	LeaderElectionNamespace string
	// CredentialsNamespace holds the Secrets DestinationRules name by
	// credentialName (--source kubernetes), mirrored into CertDir.
	CredentialsNamespace string
	ConfigDir            string
	Outbound             serviceentry.OutboundMode
	XDSListen            string
	Envoy                string // managed | external
	EnvoyPath            string
	EnvoyAdmin           string
	EnvoyLogLevel        string
	NodeID               string
	RunDir               string
	GatewayAddress       string
	PortOffset           uint
	AccessLog            string
	DNSResolvers         []string
	ConnectTimeout       time.Duration
	LogLevel             string
	LogFormat            string
	AdminListen          string
	// DecisionsKept is how many denied decisions the in-memory store keeps
	// for the API, the CLI and the dashboard (allowed ones: a fifth).
	DecisionsKept int
	// AdminToken, read from --admin-token-file, protects the admin port.
	AdminToken string
	// CertDir holds credentialName folders (tls.crt, tls.key, ca.crt) for
	// TLS origination; CertExpiryWarning is how early an expiring client
	// certificate is warned about.
	CertDir           string
	CertExpiryWarning time.Duration
	// The mesh listener: MeshPort 0 disables it; MeshCADir holds the mesh
	// CA (created at first start, or Istio's cacerts layout).
	MeshPort uint
	// ProxyPort is the explicit proxy listener's service port (0: off).
	ProxyPort uint
	// ProxyTokens is the file of the proxy's client identities and
	// secrets; ProxyRequireIdentity refuses clients without one.
	ProxyTokens          string
	ProxyRequireIdentity bool
	// UpstreamProxy ("host:port") chains TLS passthrough hosts through an
	// upstream CONNECT proxy; UpstreamProxyCredentials is a file holding
	// its "user:password".
	UpstreamProxy            string
	UpstreamProxyCredentials string
	MeshCADir                string
	TrustDomain              string
	// Scope is the gateway's namespace and labels and the mesh root
	// namespace: which AuthorizationPolicies and PeerAuthentications act
	// at the gateway. AuditNamespaces dry-run their Sidecar.
	Scope           serviceentry.PolicyScope
	AuditNamespaces []string
	// GatewayIdentities are the identities ("namespace/serviceaccount")
	// allowed on the xDS port; the first is the managed Envoy's, and the
	// mesh listener's certificate. GatewayIdentity is that first one.
	GatewayIdentities []string
	GatewayIdentity   string
	// The authenticated control plane: egressd's own identity on its xDS
	// port, the names and addresses its certificate answers to, the
	// lifetime of the gateways' client certificates, where (with --source
	// kubernetes) the leader keeps them for the gateway pods, and the
	// debugging escape hatch XDSInsecure (plaintext, anyone).
	ControlPlaneIdentity string
	XDSServerNames       []string
	XDSClientCertTTL     time.Duration
	XDSCredentialsSecret string // "namespace/name"; "" writes none
	XDSInsecure          bool

	// UpstreamAllow are ranges the gateway may connect to (and the DNS
	// proxy's forward mode may answer) although they are in a blocked
	// class; GatewaySelf are more of the gateway's own addresses, never an
	// upstream (besides its listen address and DNS gateway IPs).
	UpstreamAllow []netip.Prefix
	GatewaySelf   []netip.Prefix
	// GatewayResolverListen is where egressd serves the gateway's own DNS
	// lookups; GatewayResolverAddress is that address as the gateway
	// reaches it (host:port; a name is resolved at start).
	GatewayResolverListen  string
	GatewayResolverAddress string
	// DecisionLogWindow folds identical denial lines (0: every line);
	// DecisionLogMaxLines bounds the lines per window.
	DecisionLogWindow time.Duration
	// AllowedFlush is how often the gateway reports its counts of allowed
	// HTTP requests (0: every allowed request is reported one by one);
	// AllowedSample the percentage still reported one by one.
	AllowedFlush        time.Duration
	AllowedSample       float64
	DecisionLogMaxLines int
	// EnvoyMaxHeap (bytes, 0: unbounded) and EnvoyMaxConnections (0: from
	// the file descriptor limit) bound the managed Envoy.
	EnvoyMaxHeap uint64
	// EnvoyHostStats keeps the managed Envoy's per-host stats.
	EnvoyHostStats bool
	// OnDemandClusters lets the gateway discover the clusters of listed
	// hosts when traffic needs them, instead of holding every one.
	OnDemandClusters    bool
	EnvoyMaxConnections int64

	DNSListen        string // "" disables the DNS proxy
	DNSMode          dnsproxy.Mode
	DNSGatewayIPs    []netip.Addr
	DNSUpstreams     []string
	DNSPassthrough   []string
	DNSRefuse        string // NXDOMAIN | REFUSED
	DNSVIPRange      netip.Prefix
	DNSAllowPrivate  bool
	DNSUpstreamsFrom string // resolv.conf the default upstreams come from
}

// defaultRunDir is a per-user state folder: the Envoy bootstrap and the pid
// file that lets a restarted egressd adopt the Envoy it left running.
func defaultRunDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "egressd")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("egressd-%d", os.Getuid()))
}

// NewConfig parses the flags of `egressd run`. Output (usage, errors) goes
// to out.
func NewConfig(args []string, out io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("egressd run", flag.ContinueOnError)
	fs.SetOutput(out)
	var outbound, resolvers, dnsMode, dnsGatewayIPs, dnsUpstreams, dnsZones, dnsVIPs string
	fs.StringVar(&c.ConfigDir, "config", "examples", "folder of ServiceEntry YAML files, watched for changes")
	var watchNamespaces string
	fs.StringVar(&c.Source, "source", sourceDir, "where Istio resources come from: dir (the --config folder) or kubernetes (the API server)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig for --source kubernetes (default: the pod's service account, else $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces the Kubernetes source watches (default: all)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", false, "with several replicas: elect one to write status and Events (every replica serves)")
	fs.StringVar(&c.LeaderElectionNamespace, "leader-election-namespace", "egressd-system", "namespace of the leader election Lease")
	fs.StringVar(&c.CredentialsNamespace, "credentials-namespace", "egressd-system", "with --source kubernetes: namespace of the Secrets DestinationRules name by credentialName, mirrored into --cert-dir")
	fs.StringVar(&outbound, "outbound", string(serviceentry.RegistryOnly), "outbound traffic policy: REGISTRY_ONLY (deny unlisted), ALLOW_ANY, or AUDIT (allow unlisted but record each as audit-deny)")
	fs.StringVar(&c.XDSListen, "xds-listen", "127.0.0.1:18000", "address of the xDS (ADS) gRPC server Envoy connects to")
	fs.StringVar(&c.Envoy, "envoy", envoyManaged, "managed: start and supervise Envoy; external: only serve xDS to an Envoy run elsewhere")
	fs.StringVar(&c.EnvoyPath, "envoy-path", "", "Envoy binary (default: $ENVOY_PATH, the make setup cache, then PATH)")
	fs.StringVar(&c.EnvoyAdmin, "envoy-admin", "127.0.0.1:15001", "address of the managed Envoy's admin interface (keep it on loopback)")
	fs.StringVar(&c.EnvoyLogLevel, "envoy-log-level", "warn", "log level of the managed Envoy")
	fs.StringVar(&c.NodeID, "node-id", "egress-gateway", "node id of the managed Envoy")
	fs.StringVar(&c.RunDir, "run-dir", defaultRunDir(), "state folder for the managed Envoy (bootstrap, pid file)")
	fs.StringVar(&c.GatewayAddress, "gateway-address", "127.0.0.1", "IP the gateway's listeners bind to (0.0.0.0 in a cluster)")
	fs.UintVar(&c.PortOffset, "port-offset", 0, "added to every service port to get the gateway's listener port (e.g. 10000 serves port 80 on 10080 without root)")
	fs.StringVar(&c.AccessLog, "access-log", "", "file Envoy writes its own JSON access log to, one line per request or connection (default: none; egressd logs every denial itself)")
	fs.StringVar(&resolvers, "gateway-dns", "", "comma-separated ip:port upstream resolvers of the gateway resolver, which resolves the gateway's DNS clusters and wildcard hosts (default: the DNS proxy's upstreams)")
	var upstreamAllow, gatewaySelf, envoyMaxHeap string
	fs.StringVar(&upstreamAllow, "upstream-allow-cidrs", "", "comma-separated ranges the gateway may connect to although they are loopback, private, link-local or otherwise blocked (e.g. a partner VPN at 10.20.0.0/16)")
	fs.StringVar(&gatewaySelf, "gateway-self-cidrs", "", "comma-separated ranges that are the gateway itself (its pods, its Service IPs) besides --gateway-address and --dns-gateway-ip: never an upstream")
	fs.StringVar(&c.GatewayResolverListen, "gateway-resolver-listen", "127.0.0.1:0", "where egressd answers the gateway's own DNS lookups, with every address checked (port 0: a free port; in a cluster, an address the gateway pods reach)")
	fs.StringVar(&c.GatewayResolverAddress, "gateway-resolver-address", "", "host:port the gateway sends its DNS lookups to (default: the --gateway-resolver-listen address; a name is resolved when egressd starts)")
	fs.DurationVar(&c.DecisionLogWindow, "decision-log-window", time.Second, "log identical denials (same layer, reason, source address, host, port) once per window, then one line with their count (0: every line)")
	fs.DurationVar(&c.AllowedFlush, "allowed-flush", 2*time.Second, "how often the gateway reports its counts of allowed HTTP requests to listed hosts, which it then summarizes instead of reporting each (denials, redirects, errors and the mesh listener's requests are always reported one by one; 0: report every allowed request)")
	fs.Float64Var(&c.AllowedSample, "allowed-sample", 0, "with --allowed-flush, the percentage of the summarized requests still reported one by one (0 to 100)")
	fs.IntVar(&c.DecisionLogMaxLines, "decision-log-max-lines", 1000, "at most this many denial lines per --decision-log-window; the rest are counted in one summary line per layer and reason")
	fs.BoolVar(&c.OnDemandClusters, "on-demand-clusters", true, "the gateway asks egressd for a listed host's cluster the first time traffic needs it (on-demand CDS) and holds the clusters of the hosts in use, not of the whole allowlist (false: every cluster is sent to every gateway)")
	fs.BoolVar(&c.EnvoyHostStats, "envoy-host-stats", false, "keep the managed Envoy's stats of every host's cluster and filter chain (over a million at 10,000 entries, a third of its memory)")
	fs.StringVar(&envoyMaxHeap, "envoy-max-heap", "4Gi", "heap the managed Envoy may use before it sheds load (bytes, or with Ki, Mi, Gi; 0: unbounded); a large allowlist needs more (about 100Mi per 1,000 ServiceEntries)")
	fs.Int64Var(&c.EnvoyMaxConnections, "envoy-max-connections", 0, "open downstream connections of the managed Envoy before it refuses new ones (0: from its file descriptor limit, at most 50000)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 5*time.Second, "upstream connect timeout of the gateway")
	fs.StringVar(&c.LogLevel, "log-level", "info", "egressd log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "egressd log format: json or console")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:15000", "egressd's admin HTTP server: /metrics, /healthz, /readyz and the /api/v1 decision API (\"\" disables it)")
	fs.StringVar(&c.CertDir, "cert-dir", "", "folder of TLS origination credentials: a DestinationRule's credentialName N is read from DIR/N/ (tls.crt, tls.key, ca.crt, or cert, key, cacert); with --source kubernetes, where the Secrets are mirrored (default: RUN_DIR/credentials)")
	fs.DurationVar(&c.CertExpiryWarning, "cert-expiry-warning", 30*24*time.Hour, "warn this long before a client certificate for TLS origination expires")
	fs.UintVar(&c.ProxyPort, "proxy-port", 3128, "service port of the explicit proxy listener, for HTTPS_PROXY/HTTP_PROXY clients: CONNECT to listed hosts and absolute-URI requests (listens on it plus --port-offset; 0 disables it)")
	fs.StringVar(&c.ProxyTokens, "proxy-tokens", "", "file of the explicit proxy's clients: lines of \"<identity> <secret>\"; a client sends Proxy-Authorization (Basic identity:secret, or Bearer secret) and its decisions carry the identity")
	fs.BoolVar(&c.ProxyRequireIdentity, "proxy-require-identity", false, "the explicit proxy refuses (407) a request without a known Proxy-Authorization")
	fs.StringVar(&c.UpstreamProxy, "upstream-proxy", "", "host:port of an upstream HTTP CONNECT proxy (a corporate proxy) that every TLS passthrough host and CONNECT to one is sent through (resolved once at start)")
	fs.StringVar(&c.UpstreamProxyCredentials, "upstream-proxy-credentials", "", "file holding \"user:password\" for --upstream-proxy (sent as Proxy-Authorization: Basic)")
	fs.UintVar(&c.MeshPort, "mesh-port", 15443, "service port of the mesh listener, where mesh callers connect with mutual TLS (0 disables it)")
	fs.StringVar(&c.MeshCADir, "mesh-ca-dir", "", "the mesh CA: Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), or a folder where egressd creates and keeps its own (default: RUN_DIR/ca)")
	fs.StringVar(&c.TrustDomain, "trust-domain", "cluster.local", "the mesh trust domain of SPIFFE identities")
	scope := scopeFlags(fs)
	var auditNamespaces string
	fs.StringVar(&auditNamespaces, "audit-namespaces", "", "comma-separated namespaces whose Sidecar is dry-run: what it would refuse (DNS proxy, mesh listener) goes through and is recorded as audit-deny (sidecar_scope)")
	var gatewayIdentities, xdsServerNames string
	fs.StringVar(&gatewayIdentities, "gateway-identity", "egressd-system/egress-gateway", "comma-separated identities (namespace/serviceaccount) allowed on the xDS port; the first is the managed Envoy's and the mesh listener's")
	fs.StringVar(&c.ControlPlaneIdentity, "control-plane-identity", "egressd-system/egressd", "egressd's own identity (namespace/serviceaccount) on its xDS port; gateways verify it")
	fs.StringVar(&xdsServerNames, "xds-server-names", "", "comma-separated extra DNS names and IP addresses of egressd's xDS certificate (it always has localhost, 127.0.0.1, ::1, the --xds-listen IP, and egressd[.<ns>[.svc[.cluster.local]]] of --control-plane-identity's namespace)")
	fs.DurationVar(&c.XDSClientCertTTL, "xds-client-cert-ttl", 24*time.Hour, "lifetime of the gateways' xDS client certificates (renewed at half of it)")
	fs.StringVar(&c.XDSCredentialsSecret, "xds-credentials-secret", "", "with --source kubernetes: namespace/name of the Secret in which the leader keeps the gateway pods' xDS client certificate (default egressd-system/egress-gateway-xds; \"-\" for none)")
	fs.BoolVar(&c.XDSInsecure, "xds-insecure", false, "DEBUGGING ONLY: serve xDS, secrets and the access-log service in plaintext to anyone (a warning is logged every minute)")
	var tokenFile string
	fs.StringVar(&tokenFile, "admin-token-file", "", "file holding a bearer token the admin port requires for the dashboard, /api/v1 and /metrics (probes stay open)")
	fs.IntVar(&c.DecisionsKept, "decisions-kept", 50000, "denied and audit-denied decisions kept in memory for the API and egressctl (allowed ones: a fifth as many)")
	fs.StringVar(&c.DNSListen, "dns-listen", dnsproxy.DefaultListen, "DNS proxy address, UDP and TCP (\"\" disables the DNS proxy)")
	fs.StringVar(&dnsMode, "dns-mode", string(dnsproxy.ModeGateway), "gateway: answer allowed names with the gateway's IPs; forward: answer them with the real records")
	fs.StringVar(&dnsGatewayIPs, "dns-gateway-ip", "", "comma-separated IPs the DNS proxy answers allowed names with in gateway mode (default: --gateway-address unless it is 0.0.0.0)")
	fs.StringVar(&dnsUpstreams, "dns-upstream", "", "comma-separated ip:port upstream resolvers, tried in order (default: the nameservers of --dns-resolv-conf)")
	fs.StringVar(&c.DNSUpstreamsFrom, "dns-resolv-conf", "/etc/resolv.conf", "where the default upstream resolvers are read from")
	fs.StringVar(&dnsZones, "dns-passthrough-zones", strings.Join(dnsproxy.DefaultPassthroughZones, ","), "comma-separated zones forwarded upstream unchanged")
	fs.StringVar(&c.DNSRefuse, "dns-refuse", "NXDOMAIN", "answer for refused names: NXDOMAIN or REFUSED")
	fs.StringVar(&dnsVIPs, "dns-vip-range", dnsproxy.DefaultVIPRange.String(), "range of auto-allocated VIPs for TCP ServiceEntries without addresses")
	fs.BoolVar(&c.DNSAllowPrivate, "dns-allow-private", false, "turn off the rebinding guard (private, loopback and link-local answers for DNS-resolved entries are dropped unless listed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch c.Source {
	case sourceDir, sourceKubernetes:
	default:
		return nil, fmt.Errorf("--source: %q: use %s or %s", c.Source, sourceDir, sourceKubernetes)
	}
	var scopeErr error
	if c.Scope, scopeErr = scope(); scopeErr != nil {
		return nil, scopeErr
	}
	c.WatchNamespaces = splitList(watchNamespaces)
	c.AuditNamespaces = splitList(auditNamespaces)
	if c.Source == sourceKubernetes && c.CertDir == "" {
		c.CertDir = filepath.Join(c.RunDir, "credentials")
	}
	if c.ProxyPort > 65535 {
		return nil, fmt.Errorf("--proxy-port: %d is not a port", c.ProxyPort)
	}
	if c.MeshPort > 65535 {
		return nil, fmt.Errorf("--mesh-port: %d is not a port", c.MeshPort)
	}
	if c.MeshCADir == "" {
		c.MeshCADir = filepath.Join(c.RunDir, "ca")
	}
	c.GatewayIdentities = splitList(gatewayIdentities)
	if len(c.GatewayIdentities) == 0 {
		return nil, errors.New("--gateway-identity: at least one namespace/serviceaccount")
	}
	for _, id := range append(slices.Clone(c.GatewayIdentities), c.ControlPlaneIdentity) {
		if ns, sa, ok := strings.Cut(id, "/"); !ok || ns == "" || sa == "" || strings.Contains(sa, "/") {
			flag := "--gateway-identity"
			if id == c.ControlPlaneIdentity {
				flag = "--control-plane-identity"
			}
			return nil, fmt.Errorf("%s: %q: want namespace/serviceaccount", flag, id)
		}
	}
	c.GatewayIdentity = c.GatewayIdentities[0]
	c.XDSServerNames = splitList(xdsServerNames)
	if c.XDSClientCertTTL < 10*time.Second {
		return nil, fmt.Errorf("--xds-client-cert-ttl: %s: at least 10s", c.XDSClientCertTTL)
	}
	switch {
	case c.XDSCredentialsSecret == "-":
		c.XDSCredentialsSecret = ""
	case c.XDSCredentialsSecret == "" && c.Source == sourceKubernetes:
		c.XDSCredentialsSecret = "egressd-system/egress-gateway-xds"
	case c.XDSCredentialsSecret != "":
		if ns, name, ok := strings.Cut(c.XDSCredentialsSecret, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("--xds-credentials-secret: %q: want namespace/name", c.XDSCredentialsSecret)
		}
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		if c.AdminToken = strings.TrimSpace(string(b)); c.AdminToken == "" {
			return nil, fmt.Errorf("--admin-token-file: %s is empty", tokenFile)
		}
	}
	if c.DecisionsKept < 1 {
		return nil, fmt.Errorf("--decisions-kept: %d: must be at least 1", c.DecisionsKept)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var err error
	if c.Outbound, err = serviceentry.ParseOutboundMode(outbound); err != nil {
		return nil, fmt.Errorf("--outbound: %w", err)
	}
	if c.Envoy != envoyManaged && c.Envoy != envoyExternal {
		return nil, fmt.Errorf("--envoy: %q is neither %s nor %s", c.Envoy, envoyManaged, envoyExternal)
	}
	if _, err := netip.ParseAddr(c.GatewayAddress); err != nil {
		return nil, fmt.Errorf("--gateway-address: %q is not an IP address", c.GatewayAddress)
	}
	if c.PortOffset > 60000 {
		return nil, fmt.Errorf("--port-offset: %d leaves no room for service ports", c.PortOffset)
	}
	for _, r := range splitList(resolvers) {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return nil, fmt.Errorf("--gateway-dns: %q is not ip:port", r)
		}
		c.DNSResolvers = append(c.DNSResolvers, r)
	}
	if c.ConnectTimeout <= 0 {
		return nil, errors.New("--connect-timeout must be positive")
	}
	if c.UpstreamAllow, err = netguard.ParsePrefixes(splitList(upstreamAllow)); err != nil {
		return nil, fmt.Errorf("--upstream-allow-cidrs: %w", err)
	}
	if c.GatewaySelf, err = netguard.ParsePrefixes(splitList(gatewaySelf)); err != nil {
		return nil, fmt.Errorf("--gateway-self-cidrs: %w", err)
	}
	if _, err := netip.ParseAddrPort(c.GatewayResolverListen); err != nil {
		return nil, fmt.Errorf("--gateway-resolver-listen: %q is not ip:port", c.GatewayResolverListen)
	}
	if a := c.GatewayResolverAddress; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "0" {
			return nil, fmt.Errorf("--gateway-resolver-address: %q is not host:port", a)
		}
	}
	if c.DecisionLogWindow < 0 {
		return nil, errors.New("--decision-log-window must not be negative")
	}
	if c.AllowedFlush < 0 || (c.AllowedFlush > 0 && c.AllowedFlush < 100*time.Millisecond) {
		return nil, fmt.Errorf("--allowed-flush: %v: 0, or at least 100ms", c.AllowedFlush)
	}
	if c.AllowedSample < 0 || c.AllowedSample > 100 {
		return nil, fmt.Errorf("--allowed-sample: %v: a percentage from 0 to 100", c.AllowedSample)
	}
	if c.DecisionLogMaxLines < 1 {
		return nil, fmt.Errorf("--decision-log-max-lines: %d: must be at least 1", c.DecisionLogMaxLines)
	}
	if c.EnvoyMaxHeap, err = parseBytes(envoyMaxHeap); err != nil {
		return nil, fmt.Errorf("--envoy-max-heap: %w", err)
	}
	if c.EnvoyMaxHeap != 0 && c.EnvoyMaxHeap < 32<<20 {
		return nil, fmt.Errorf("--envoy-max-heap: %s is too small for Envoy (at least 32Mi)", envoyMaxHeap)
	}
	if c.EnvoyMaxConnections < 0 {
		return nil, errors.New("--envoy-max-connections must not be negative")
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		return nil, fmt.Errorf("--log-format: %q is neither json nor console", c.LogFormat)
	}
	if err := c.parseDNS(dnsMode, dnsGatewayIPs, dnsUpstreams, dnsZones, dnsVIPs); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDNS checks the DNS proxy's flags.
func (c *Config) parseDNS(mode, gatewayIPs, upstreams, zones, vips string) error {
	var err error
	if c.DNSMode, err = dnsproxy.ParseMode(mode); err != nil {
		return fmt.Errorf("--dns-mode: %w", err)
	}
	for _, s := range splitList(gatewayIPs) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--dns-gateway-ip: %q is not an IP address", s)
		}
		c.DNSGatewayIPs = append(c.DNSGatewayIPs, ip)
	}
	if len(c.DNSGatewayIPs) == 0 {
		if ip := netip.MustParseAddr(c.GatewayAddress); !ip.IsUnspecified() {
			c.DNSGatewayIPs = []netip.Addr{ip}
		} else if c.DNSListen != "" && c.DNSMode == dnsproxy.ModeGateway {
			return fmt.Errorf("--dns-gateway-ip: required when --gateway-address is %s (the DNS proxy must answer with an address clients can reach)", c.GatewayAddress)
		}
	}
	c.DNSUpstreams = splitList(upstreams)
	c.DNSPassthrough = splitList(zones)
	if c.DNSPassthrough == nil {
		c.DNSPassthrough = []string{}
	}
	switch strings.ToUpper(c.DNSRefuse) {
	case "NXDOMAIN", "REFUSED":
		c.DNSRefuse = strings.ToUpper(c.DNSRefuse)
	default:
		return fmt.Errorf("--dns-refuse: %q is neither NXDOMAIN nor REFUSED", c.DNSRefuse)
	}
	if c.DNSVIPRange, err = netip.ParsePrefix(vips); err != nil {
		return fmt.Errorf("--dns-vip-range: %q is not a CIDR range", vips)
	}
	return nil
}

// parseBytes parses a size: a number of bytes, or one with the suffix Ki,
// Mi or Gi.
func parseBytes(s string) (uint64, error) {
	mult := uint64(1)
	for suffix, m := range map[string]uint64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size such as 512Mi or 2Gi", s)
	}
	return n * mult, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// scopeFlags defines the flags of the gateway's place in the mesh; the
// function returned reads them once parsed.
func scopeFlags(fs *flag.FlagSet) func() (serviceentry.PolicyScope, error) {
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		namespace = serviceentry.DefaultRootNamespace
	}
	fs.StringVar(&namespace, "gateway-namespace", namespace, "the gateway's namespace: AuthorizationPolicies and PeerAuthentications there (and in --mesh-root-namespace) apply to it when their selector matches --gateway-labels; those of other namespaces are for other workloads; the default is $POD_NAMESPACE, else istio-system")
	labels := fs.String("gateway-labels", "app=istio-egressgateway,istio=egressgateway", "the gateway's labels (k=v,...), matched against policies' spec.selector.matchLabels; the default is what Istio's egress gateway carries, so the policies of Istio's egress tasks apply")
	root := fs.String("mesh-root-namespace", serviceentry.DefaultRootNamespace, "the mesh root namespace (Istio's meshConfig.rootNamespace): a policy there without a selector applies mesh-wide")
	return func() (serviceentry.PolicyScope, error) {
		l, err := serviceentry.ParseLabels(*labels)
		if err != nil {
			return serviceentry.PolicyScope{}, fmt.Errorf("--gateway-labels: %w", err)
		}
		if namespace == "" || *root == "" {
			return serviceentry.PolicyScope{}, errors.New("--gateway-namespace and --mesh-root-namespace must not be empty")
		}
		return serviceentry.PolicyScope{Workload: serviceentry.Workload{Namespace: namespace, Labels: l}, RootNamespace: *root}, nil
	}
}
