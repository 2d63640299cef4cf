package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/egress/xdsauth"
)

// xdsCredentialsDir is the managed Envoy's credential folder in --run-dir.
const xdsCredentialsDir = "xds-credentials"

// insecureWarningInterval is how often --xds-insecure is warned about.
const insecureWarningInterval = time.Minute

// controlPlane is egressd's authenticated xDS port: the mesh CA, egressd's
// own certificate, the credentials that let only gateways in, and the
// gateways' client certificate (for the managed Envoy written to its
// credential folder; with --source kubernetes kept in a Secret by the
// leader).
type controlPlane struct {
	cfg      *Config
	log      *zap.Logger
	ca       *identity.CA
	server   *identity.Keeper // egressd's certificate on the xDS port
	client   *identity.Keeper // the gateways' client certificate
	creds    *xdsauth.Credentials
	serverID string // egressd's SPIFFE ID, which gateways verify
	// onClientChange is called after each renewal of the client
	// certificate (the Secret writer listens).
	onClientChange []func(identity.Issued)
}

// newControlPlane opens (or creates) the mesh CA and issues egressd's and
// the gateways' first certificates.
func newControlPlane(cfg *Config, log *zap.Logger, reg prometheus.Registerer) (*controlPlane, error) {
	ca, err := identity.LoadOrCreate(cfg.MeshCADir, cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	cp := &controlPlane{cfg: cfg, log: log.Named("xdsauth"), ca: ca}
	ns, sa, _ := strings.Cut(cfg.ControlPlaneIdentity, "/")
	cp.serverID = identity.SPIFFEID(ca.TrustDomain(), ns, sa)
	dnsNames, ips := serverNames(cfg, ns)
	if cp.server, err = identity.NewKeeper(identity.KeeperConfig{
		CA: ca, Name: "xds-server", Log: cp.log, Registerer: reg,
		Request: identity.Request{Namespace: ns, ServiceAccount: sa, DNSNames: dnsNames, IPs: ips},
	}); err != nil {
		return nil, err
	}
	gns, gsa, _ := strings.Cut(cfg.GatewayIdentity, "/")
	if cp.client, err = identity.NewKeeper(identity.KeeperConfig{
		CA: ca, Name: "xds-client", Log: cp.log, Registerer: reg,
		Request:  identity.Request{Namespace: gns, ServiceAccount: gsa, TTL: cfg.XDSClientCertTTL},
		OnChange: cp.clientRenewed,
	}); err != nil {
		return nil, err
	}
	if cfg.XDSInsecure {
		return cp, nil
	}
	var gateways []string
	for _, id := range cfg.GatewayIdentities {
		ns, sa, _ := strings.Cut(id, "/")
		gateways = append(gateways, identity.SPIFFEID(ca.TrustDomain(), ns, sa))
	}
	if cp.creds, err = xdsauth.NewCredentials(xdsauth.ServerConfig{Certificate: cp.server, Gateways: gateways, Log: cp.log, Registerer: reg}); err != nil {
		return nil, err
	}
	cp.log.Info("xds port authenticates its clients", zap.String("control_plane", cp.serverID), zap.Strings("gateways", gateways),
		zap.Strings("server_names", dnsNames), zap.Stringers("server_addresses", ips))
	return cp, nil
}

// serverNames are the DNS names and addresses of egressd's certificate:
// loopback, the xDS listen address, the in-cluster names of the egressd
// Service in the control plane's namespace, and --xds-server-names.
func serverNames(cfg *Config, ns string) ([]string, []netip.Addr) {
	dnsNames := []string{"localhost", "egressd", "egressd." + ns, "egressd." + ns + ".svc", "egressd." + ns + ".svc.cluster.local"}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	if host, _, err := net.SplitHostPort(cfg.XDSListen); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() && !slices.Contains(ips, ip.Unmap()) {
			ips = append(ips, ip.Unmap())
		}
	}
	for _, n := range cfg.XDSServerNames {
		if ip, err := netip.ParseAddr(n); err == nil {
			ips = append(ips, ip.Unmap())
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	return dnsNames, ips
}

// credentialsDir is the managed Envoy's credential folder.
func (cp *controlPlane) credentialsDir() string {
	dir := filepath.Join(cp.cfg.RunDir, xdsCredentialsDir)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs // Envoy's bootstrap wants an absolute path
	}
	return dir
}

// writeManaged writes the managed Envoy's client credentials (before it
// starts, and after each renewal: Envoy watches the folder).
func (cp *controlPlane) writeManaged(c identity.Issued) error {
	return xdsauth.WriteCredentials(cp.credentialsDir(), c)
}

// clientRenewed hands a renewed client certificate to the managed Envoy
// and to the Secret writer.
func (cp *controlPlane) clientRenewed(c identity.Issued) {
	if cp.cfg.Envoy == envoyManaged {
		if err := cp.writeManaged(c); err != nil {
			cp.log.Error("renewed xDS client certificate not written; the gateway keeps the current one", zap.Error(err))
		}
	}
	for _, f := range cp.onClientChange {
		f(c)
	}
}

// Start renews the certificates until ctx ends; with --xds-insecure it
// warns every minute that the port is open to anyone.
func (cp *controlPlane) Start(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); _ = cp.client.Run(ctx) }()
	if cp.cfg.XDSInsecure {
		go func() {
			t := time.NewTicker(insecureWarningInterval)
			defer t.Stop()
			for {
				cp.warnInsecure()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	err := cp.server.Run(ctx)
	<-done
	return err
}

func (cp *controlPlane) warnInsecure() {
	cp.log.Warn("--xds-insecure: the xDS port serves configuration, secrets (private keys) and the access-log service in plaintext to ANY client; use it only for debugging",
		zap.String("xds", cp.cfg.XDSListen))
}
