package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/egressd/egressd/dnsproxy"
	"github.com/egressd/egressd/egress/dashboard"
	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/egress/intake"
	"github.com/egressd/egressd/egress/redirect"
	"github.com/egressd/egressd/egress/suggest"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/egress/xdsauth"
	"github.com/egressd/egressd/origination"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/source"
	"github.com/egressd/egressd/serviceentry/vocab"
)

func runCommand(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := NewConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "egressd run:", err)
		return 2
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "egressd run:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("egressd stopped", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(cfg *Config) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	// Every denial is one log line: zap's production sampling would drop
	// repeats of the same message beyond 100 a second.
	zc.Sampling = nil
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

// consumerBuffer is each decision consumer's queue: a second of the
// gateway at full tilt.
const consumerBuffer = 65536

// run wires the pipeline, top to bottom: the address guard and gateway
// resolver; the xDS server, its mutual TLS and (managed) Envoy; the
// configuration source; the decision stream (gateway access logs, DNS
// refusals -> one stream -> log line, metrics, store); the parts that move
// with each allowlist; the SDS secrets; where each allowlist goes; then it
// runs it all, and the admin API.
func run(ctx context.Context, cfg *Config, log *zap.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The address guard: what the gateway may connect to. The gateway
	// resolves every name through egressd's gateway resolver, which hands
	// out only addresses the policy allows and notes what it refused in
	// the ledger, for the decisions of the requests that then fail.
	policy, err := guardPolicy(cfg)
	if err != nil {
		return err
	}
	refusals := netguard.NewLedger(0, 0)
	resolver, err := newGatewayResolver(cfg, log, registry, policy, refusals)
	if err != nil {
		return err
	}
	g.Go(func() error { return resolver.Start(ctx) })
	resolverAddr, err := waitResolver(ctx, resolver, cfg.GatewayResolverAddress)
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	proxyClients, err := readProxyTokens(cfg.ProxyTokens)
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	chain, err := upstreamProxy(cfg)
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	server, err := xds.NewServer(log.Named("xds"), xds.Options{
		ListenAddress:    cfg.GatewayAddress,
		PortOffset:       uint32(cfg.PortOffset),
		Outbound:         cfg.Outbound,
		AccessLogPath:    cfg.AccessLog,
		ALSCluster:       envoy.XDSClusterName,
		SummarizeAllowed: cfg.AllowedFlush > 0,
		AllowedSample:    cfg.AllowedSample,
		DNSResolvers:     []string{resolverAddr},
		Guard:            *policy,
		OwnPorts:         ownPorts(cfg),
		ConnectTimeout:   cfg.ConnectTimeout,
		SecretNames:      origination.SecretNamesFor,
		Mesh:             meshOptions(cfg),
		Scope:            &cfg.Scope,
		AuditNamespaces:  cfg.AuditNamespaces,
		ODCDSCluster:     onDemandCluster(cfg),
		// With the pod index, the plaintext ports scope callers by
		// their pod's namespace (exportTo, Sidecar).
		SourceScope: cfg.Source == sourceKubernetes,
		ProxyPort:   uint32(cfg.ProxyPort),
		// Clients of the proxy outside the mesh, by Proxy-Authorization.
		ProxyIdentities:      proxyClients,
		ProxyRequireIdentity: cfg.ProxyRequireIdentity,
		UpstreamProxy:        chain,
	})
	if err != nil {
		return err
	}
	// The xDS port speaks mutual TLS: only gateways with a client
	// certificate of the mesh CA get configuration and secrets, or may
	// report access logs.
	cp, err := newControlPlane(cfg, log, registry)
	if err != nil {
		return err
	}
	if cp.creds != nil {
		server.SetCredentials(cp.creds)
	}
	addr, err := server.Listen(cfg.XDSListen)
	if err != nil {
		return err
	}

	var supervisor *envoy.Supervisor
	if cfg.Envoy == envoyManaged {
		if err := cp.writeManaged(cp.client.Current()); err != nil {
			return err
		}
		if supervisor, err = newSupervisor(cfg, addr.String(), cp, log); err != nil {
			return err
		}
	}
	log.Info("egressd starting", zap.String("version", version), zap.String("config", cfg.ConfigDir),
		zap.String("outbound", string(cfg.Outbound)), zap.String("xds", addr.String()), zap.String("envoy", cfg.Envoy),
		zap.String("gateway_resolver", resolverAddr), zap.Stringers("upstream_allow", policy.Allow), zap.Stringers("gateway_self", policy.Self))

	// The configuration source. It knows the callers' workloads
	// (Kubernetes: by pod IP); it is told where allowlists go below, once
	// everything that takes them exists.
	src, err := newConfigSource(cfg, log.Named("source"), registry)
	if err != nil {
		return err
	}
	kube, _ := src.(*kubeSource)
	var podsChanged chan struct{}
	if kube != nil {
		server.SetPods(kube.Kube.PodAddresses)
		podsChanged = make(chan struct{}, 1)
		kube.Kube.OnPods = func() {
			select {
			case podsChanged <- struct{}{}:
			default: // one is pending already
			}
		}
	}

	// The decision stream and its consumers. Every decision, from the
	// gateway's access logs or the DNS proxy, names its caller's workload
	// when the source knows it.
	stream := decision.NewStream(decision.StreamConfig{Registerer: registry})
	store := decision.NewStore(decision.StoreConfig{Capacity: cfg.DecisionsKept, AllowedCapacity: max(cfg.DecisionsKept/5, 1)})
	decisionLog := decision.NewFoldingLogger(log.Named("decision"), decision.FoldConfig{Window: cfg.DecisionLogWindow, MaxLines: cfg.DecisionLogMaxLines})
	stream.Add("log", consumerBuffer, decisionLog)
	stream.Add("metrics", consumerBuffer, decision.NewMetrics(decision.MetricsConfig{Registerer: registry}))
	stream.Add("store", consumerBuffer, store)
	publish := func(d *decision.Decision) { stream.Publish(withWorkload(d, src)) }

	// The parts that answer from the allowlist and move together (see
	// snapshotFanout), and the access-log intake, whose redirect tracker
	// publishes the decisions.
	var dnsServer *dnsproxy.Server
	if cfg.DNSListen != "" {
		if dnsServer, err = newDNSProxy(cfg, log, registry, &netguard.Policy{Allow: policy.Allow}, func(d dnsproxy.Decision) { publish(dnsDecision(d)) }, src); err != nil {
			return err
		}
	}
	snapshots := &snapshotFanout{
		resolver: resolver,
		gateway: func(ctx context.Context, a *serviceentry.Allowlist) error {
			_, err := server.Update(ctx, a)
			return err
		},
		log: log,
	}
	if dnsServer != nil {
		snapshots.dns = dnsServer
	}
	tracker := redirect.NewTracker(redirect.Config{Publish: publish, Allowlist: snapshots.Current, Outbound: cfg.Outbound})
	als, err := intake.New(intake.Config{Sink: tracker.Add, Allowlist: snapshots.Current, Scope: &cfg.Scope, Refusals: refusals, Log: log.Named("intake"), Registerer: registry})
	if err != nil {
		return err
	}
	server.AddService(als.Register)
	// The gateway's counts of the allowed requests it summarizes, every
	// --allowed-flush, over its stats sink.
	summaries, err := intake.NewSummaries(intake.SummaryConfig{Sink: publish, Log: log.Named("intake"), Registerer: registry})
	if err != nil {
		return err
	}
	server.AddService(summaries.Register)

	// The secrets the gateway is served by SDS, composed from every source:
	// TLS origination material, and with the mesh listener the gateway's
	// own certificate from the mesh CA. A change is pushed without
	// touching listeners or clusters.
	republish := func() {
		if _, err := server.Refresh(ctx); err != nil {
			log.Error("rotated secrets not published", zap.Error(err))
		}
	}
	certs := origination.NewStore(origination.StoreConfig{
		CertDir:       cfg.CertDir,
		Log:           log.Named("origination"),
		Registerer:    registry,
		ExpiryWarning: cfg.CertExpiryWarning,
		OnChange:      republish,
	})
	secrets := secretSources{certs}
	if cfg.MeshPort != 0 {
		gw, err := newGatewayIdentity(cfg, cp.ca, log, registry, republish)
		if err != nil {
			return err
		}
		secrets = append(secrets, gw)
	}
	server.SetSecrets(secrets.Secrets)

	// Where each allowlist goes, in order (see allowlistObservers).
	observers := &allowlistObservers{certs: certs, snapshots: snapshots, log: log}
	if kube != nil {
		observers.mirror = kube.mirror
	}
	src.Observe(observers.Update)
	ready := func() bool { return observers.Loaded() && src.Ready() }

	// The gateway pods' xDS client certificate: with the Kubernetes
	// source, the leader keeps it in a Secret they mount.
	if kube != nil && cfg.XDSCredentialsSecret != "" {
		ns, name, _ := strings.Cut(cfg.XDSCredentialsSecret, "/")
		secret := &source.CredentialSecret{
			Kube: kube.kube, Namespace: ns, Name: name, IsLeader: kube.Kube.IsLeader, Log: log.Named("xdsauth"),
			Files: func() (map[string][]byte, error) { return xdsauth.CredentialFiles(cp.client.Current()) },
		}
		cp.onClientChange = append(cp.onClientChange, func(identity.Issued) { secret.Notify() })
		g.Go(func() error { return secret.Start(ctx) })
	}

	// Run everything. The stream outlives the tracker, which hands over
	// what it holds when it stops.
	streamCtx, stopStream := context.WithCancel(context.Background())
	g.Go(func() error { return stream.Run(streamCtx) })
	g.Go(func() error { return decisionLog.Start(streamCtx) })
	g.Go(func() error { defer stopStream(); return tracker.Run(ctx) })
	for _, s := range secrets {
		g.Go(func() error { return s.Run(ctx) })
	}
	g.Go(func() error { return cp.Start(ctx) })
	g.Go(func() error { return server.Start(ctx) })
	g.Go(func() error { return src.Start(ctx) })
	if podsChanged != nil {
		g.Go(func() error { return publishPods(ctx, server, podsChanged, log.Named("xds")) })
	}
	if kube != nil {
		g.Go(func() error { return kube.mirror.Start(ctx) })
	}
	if supervisor != nil {
		g.Go(func() error { return supervisor.Start(ctx) })
	}
	if dnsServer != nil {
		g.Go(func() error { return dnsServer.Start(ctx) })
	}
	if cfg.AdminListen != "" {
		api := http.NewServeMux()
		api.Handle("/api/v1/", decision.NewHandler(store, stream))
		api.Handle("/api/v1/suggestions", suggest.Handler(func(since time.Time) []*decision.Decision {
			return store.Query(decision.Query{
				Verdicts: []vocab.Verdict{vocab.VerdictDeny, vocab.VerdictAuditDeny},
				Since:    since,
				Limit:    cfg.DecisionsKept,
			})
		}, snapshots.Current))
		dash := dashboard.Handler(dashboard.Config{
			Allowlist: snapshots.Current,
			Gateway:   server.Gateway,
			Health: func() dashboard.Health {
				h := dashboard.Health{
					EnvoyConnected:   server.Connected(),
					AckedVersion:     server.AckedVersion(),
					PublishedVersion: server.Version(),
					Rejected:         server.Rejected(),
					SourceSynced:     ready(),
					Outbound:         string(cfg.Outbound),
				}
				if a := snapshots.Current(); a != nil {
					h.AllowlistVersion = a.Version()
				}
				// Which allowlist each part holds: they move together.
				h.Parts = []dashboard.Part{
					{Name: "gateway (published)", Allowlist: server.AllowlistVersion()},
					{Name: "gateway (acknowledged)", Allowlist: server.AckedAllowlistVersion()},
					{Name: "gateway resolver", Allowlist: resolver.AllowlistVersion()},
					{Name: "intake, suggestions, dashboard", Allowlist: h.AllowlistVersion},
				}
				if dnsServer != nil {
					h.Parts = append(h.Parts, dashboard.Part{Name: "dns proxy", Allowlist: dnsServer.AllowlistVersion()})
				}
				h.LastSnapshot = snapshots.Since()
				return h
			},
		})
		api.Handle("/api/v1/allowlist", dash)
		api.Handle("/api/v1/health", dash)
		api.Handle("/api/v1/gateway", dash)
		admin := &adminServer{address: cfg.AdminListen, registry: registry, ready: ready, api: api, dashboard: dash, token: cfg.AdminToken, log: log.Named("admin")}
		g.Go(func() error { return admin.Start(ctx) })
	}
	return g.Wait()
}

// podsBatch is how long publishPods gathers pod events before it
// publishes: a rollout's many events make one push.
const podsBatch = 100 * time.Millisecond

// publishPods publishes the source scope of the plaintext ports again
// after pod events (see xds.Server.PodsChanged), until ctx ends.
func publishPods(ctx context.Context, server *xds.Server, changed <-chan struct{}, log *zap.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(podsBatch):
		}
		if _, err := server.PodsChanged(ctx); err != nil && ctx.Err() == nil {
			log.Error("source scope for the new pods not published", zap.Error(err))
		}
	}
}

// withWorkload names the caller of a decision that has no mesh identity
// by the workload at its address, when the source knows it.
func withWorkload(d *decision.Decision, src configSource) *decision.Decision {
	if d.Identity == "" && d.Source.IsValid() {
		if ns, sa, ok := src.Workload(d.Source.Addr()); ok {
			d.Identity = ns + "/" + sa
		}
	}
	return d
}

// credentialNames lists, once each, the credentialNames of the TLS
// origination material a snapshot uses (client key pairs and CA bundles).
func credentialNames(a *serviceentry.Allowlist) []string {
	client, ca := origination.SourcesOf(a)
	var names []string
	for _, src := range append(client, ca...) {
		if n := src.CredentialName; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// meshOptions turns the mesh listener on unless --mesh-port is 0.
func meshOptions(cfg *Config) *xds.MeshOptions {
	if cfg.MeshPort == 0 {
		return nil
	}
	return &xds.MeshOptions{Port: uint32(cfg.MeshPort), CertSecret: identity.GatewayCertSecret, BundleSecret: identity.TrustBundleSecret}
}

// newGatewayIdentity issues the gateway's own certificate (the mesh
// listener's) from the mesh CA.
func newGatewayIdentity(cfg *Config, ca *identity.CA, log *zap.Logger, reg prometheus.Registerer, onChange func()) (*identity.Gateway, error) {
	ns, sa, _ := strings.Cut(cfg.GatewayIdentity, "/")
	gw, err := identity.NewGateway(identity.GatewayConfig{
		CA: ca, Namespace: ns, ServiceAccount: sa, OnChange: onChange, Log: log.Named("identity"), Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway identity: %w", err)
	}
	log.Info("mesh identity", zap.String("trust_domain", ca.TrustDomain()), zap.Bool("istio_cacerts", ca.PluggedIn()),
		zap.String("ca_dir", cfg.MeshCADir), zap.String("gateway", gw.Principal()))
	return gw, nil
}

func newDNSProxy(cfg *Config, log *zap.Logger, reg prometheus.Registerer, guard *netguard.Policy, onDecision func(dnsproxy.Decision), src configSource) (*dnsproxy.Server, error) {
	upstreams, err := dnsUpstreams(cfg)
	if err != nil {
		return nil, err
	}
	refuse := dns.RcodeNameError
	if cfg.DNSRefuse == "REFUSED" {
		refuse = dns.RcodeRefused
	}
	return dnsproxy.New(dnsproxy.Config{
		Listen:           cfg.DNSListen,
		Mode:             cfg.DNSMode,
		GatewayIPs:       cfg.DNSGatewayIPs,
		Upstreams:        upstreams,
		PassthroughZones: cfg.DNSPassthrough,
		Outbound:         cfg.Outbound,
		RefuseRcode:      refuse,
		VIPRange:         cfg.DNSVIPRange,
		AllowPrivate:     cfg.DNSAllowPrivate,
		Guard:            guard,
		Log:              log.Named("dns"),
		Registerer:       reg,
		OnDecision:       onDecision,
		// The pod index knows the caller's namespace (--source
		// kubernetes): answers follow its exportTo and Sidecar scope.
		CallerNamespace: func(ip netip.Addr) (string, bool) {
			ns, _, ok := src.Workload(ip)
			return ns, ok
		},
		RootNamespace:   cfg.Scope.RootNamespace,
		AuditNamespaces: cfg.AuditNamespaces,
	})
}

func newSupervisor(cfg *Config, xdsAddress string, cp *controlPlane, log *zap.Logger) (*envoy.Supervisor, error) {
	bin, err := envoy.Locate(cfg.EnvoyPath, envoy.RepoCacheDir())
	if err != nil {
		return nil, err
	}
	maxConns := cfg.EnvoyMaxConnections
	if maxConns == 0 {
		maxConns = connectionBudget(log)
	}
	bc := envoy.BootstrapConfig{
		NodeID:                   cfg.NodeID,
		XDSAddress:               xdsAddress,
		AdminAddress:             cfg.EnvoyAdmin,
		MaxDownstreamConnections: maxConns,
		MaxHeapBytes:             cfg.EnvoyMaxHeap,
		HostStats:                cfg.EnvoyHostStats,
		SummaryFlush:             cfg.AllowedFlush,
	}
	if !cfg.XDSInsecure {
		bc.XDSCredentialsDir, bc.XDSServerIdentity = cp.credentialsDir(), cp.serverID
	}
	bootstrap, err := envoy.BootstrapYAML(bc)
	if err != nil {
		return nil, err
	}
	return envoy.NewSupervisor(envoy.SupervisorConfig{
		BinaryPath: bin,
		Bootstrap:  bootstrap,
		RunDir:     cfg.RunDir,
		LogLevel:   cfg.EnvoyLogLevel,
		Logger:     log.Named("envoy"),
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	})
}

// onDemandCluster is the control plane's bootstrap cluster when the
// gateway discovers host clusters on demand (--on-demand-clusters), else "".
func onDemandCluster(cfg *Config) string {
	if !cfg.OnDemandClusters {
		return ""
	}
	return envoy.XDSClusterName
}
