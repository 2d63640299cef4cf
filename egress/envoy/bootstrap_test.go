package envoy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/egress/xdsauth"
	"github.com/egressd/egressd/internal/testkit"
)

func TestBootstrapYAMLGolden(t *testing.T) {
	got, err := BootstrapYAML(BootstrapConfig{
		NodeID:       "gateway-1",
		Cluster:      "egressd",
		XDSAddress:   "127.0.0.1:18000",
		AdminAddress: "127.0.0.1:15001",
		MaxHeapBytes: 1 << 30,
		SummaryFlush: 2 * time.Second,
		// Envoy reads the credentials there; the golden file only names it.
		XDSCredentialsDir: "/etc/egressd/xds-credentials",
		XDSServerIdentity: "spiffe://cluster.local/ns/egressd-system/sa/egressd",
	})
	if err != nil {
		t.Fatal(err)
	}
	golden := testkit.NewGolden("testdata")
	golden.Check(t, "bootstrap.golden.yaml", got)
	golden.Stale(t, "*.golden.yaml")
}

func TestBootstrap(t *testing.T) {
	tests := map[string]struct {
		in      BootstrapConfig
		check   func(t *testing.T, b *bootstrapv3.Bootstrap)
		wantErr string
	}{
		"defaults": {
			in: BootstrapConfig{XDSAddress: "127.0.0.1:18000"},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				if b.GetNode().GetId() != DefaultNodeID || b.GetNode().GetCluster() != DefaultCluster {
					t.Errorf("node = %v", b.GetNode())
				}
				sa := b.GetAdmin().GetAddress().GetSocketAddress()
				if got := net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())); got != DefaultAdminAddress {
					t.Errorf("admin address = %s, want %s", got, DefaultAdminAddress)
				}
				if got := b.GetStaticResources().GetClusters()[0].GetConnectTimeout().AsDuration(); got != DefaultXDSConnectTimeout {
					t.Errorf("connect timeout = %v", got)
				}
			},
		},
		"xds by name is STRICT_DNS": {
			in: BootstrapConfig{XDSAddress: "egressd.egressd.svc:18000"},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				c := b.GetStaticResources().GetClusters()[0]
				if c.GetType() != clusterv3.Cluster_STRICT_DNS || c.GetDnsLookupFamily() != clusterv3.Cluster_V4_PREFERRED {
					t.Errorf("type = %v, dns lookup family = %v; want STRICT_DNS, V4_PREFERRED", c.GetType(), c.GetDnsLookupFamily())
				}
				sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
				if sa.GetAddress() != "egressd.egressd.svc" || sa.GetPortValue() != 18000 {
					t.Errorf("endpoint = %v", sa)
				}
			},
		},
		"xds by IPv6 is STATIC": {
			in: BootstrapConfig{XDSAddress: "[::1]:18000", AdminAddress: "[::1]:15001"},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				c := b.GetStaticResources().GetClusters()[0]
				if c.GetType() != clusterv3.Cluster_STATIC {
					t.Errorf("type = %v, want STATIC", c.GetType())
				}
				if got := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); got != "::1" {
					t.Errorf("admin address = %q, want ::1", got)
				}
			},
		},
		"max connections": {
			in: BootstrapConfig{XDSAddress: "127.0.0.1:18000", MaxDownstreamConnections: 10},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				y, err := marshalYAML(b.GetOverloadManager())
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(y), `max_active_downstream_connections: "10"`) {
					t.Errorf("overload manager does not bound connections to 10:\n%s", y)
				}
			},
		},
		"no xds address":     {in: BootstrapConfig{}, wantErr: "xds address is empty"},
		"xds without port":   {in: BootstrapConfig{XDSAddress: "127.0.0.1"}, wantErr: `"127.0.0.1" must be host:port`},
		"xds port zero":      {in: BootstrapConfig{XDSAddress: "127.0.0.1:0"}, wantErr: "must be a number from 1 to 65535"},
		"xds port too big":   {in: BootstrapConfig{XDSAddress: "127.0.0.1:70000"}, wantErr: "must be a number from 1 to 65535"},
		"xds without host":   {in: BootstrapConfig{XDSAddress: ":18000"}, wantErr: "host is empty"},
		"admin by name":      {in: BootstrapConfig{XDSAddress: "127.0.0.1:18000", AdminAddress: "localhost:15001"}, wantErr: `admin address: "localhost:15001" must be ip:port`},
		"admin without port": {in: BootstrapConfig{XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1"}, wantErr: "must be ip:port"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := Bootstrap(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Bootstrap() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Bootstrap() error: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
			tc.check(t, b)
		})
	}
}

func TestBootstrapYAMLDeterministic(t *testing.T) {
	c := BootstrapConfig{XDSAddress: "egressd:18000"}
	first, err := BootstrapYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := BootstrapYAML(c)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(first), string(again)); diff != "" {
			t.Fatalf("BootstrapYAML is not deterministic (-first +again):\n%s", diff)
		}
	}
}

// TestBootstrapValidatesInEnvoy runs the real Envoy in validate mode on
// generated bootstraps.
func TestBootstrapValidatesInEnvoy(t *testing.T) {
	bin := envoyBinary(t)
	tests := map[string]BootstrapConfig{
		"static xds":  {NodeID: "gateway-1", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:15001"},
		"dns xds":     {XDSAddress: "localhost:18000", MaxDownstreamConnections: 1000},
		"ipv6 admin":  {XDSAddress: "[::1]:18000", AdminAddress: "[::1]:0"},
		"golden case": {NodeID: "gateway-1", Cluster: "egressd", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:15001", MaxHeapBytes: 1 << 30},
		"heap bound":  {XDSAddress: "127.0.0.1:18000", MaxHeapBytes: 64 << 20, MaxDownstreamConnections: 500},
		"summaries":   {XDSAddress: "127.0.0.1:18000", SummaryFlush: 2 * time.Second},
		"xds mutual TLS": {XDSAddress: "127.0.0.1:18000", XDSCredentialsDir: credentialsDir(t),
			XDSServerIdentity: "spiffe://cluster.local/ns/egressd-system/sa/egressd"},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			y, err := BootstrapYAML(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "bootstrap.yaml")
			if err := os.WriteFile(path, y, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path, "--log-level", "warn", "--disable-hot-restart").CombinedOutput()
			if err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s\nbootstrap:\n%s", err, out, y)
			}
			if !strings.Contains(string(out), "OK") {
				t.Errorf("envoy --mode validate did not say OK:\n%s", out)
			}
			if strings.Contains(string(out), "[warning]") {
				t.Errorf("envoy warns about the bootstrap:\n%s", out)
			}
		})
	}
}

// TestDeployBootstrapValidatesInEnvoy: the bootstrap deploy/base ships
// (derived from Bootstrap by hand, see its header) is valid for the real
// Envoy.
func TestDeployBootstrapValidatesInEnvoy(t *testing.T) {
	bin := envoyBinary(t)
	b, err := os.ReadFile("../../deploy/base/envoy-bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The mounted Secret's folder, here with real credentials in it.
	const mounted = "/etc/egressd/xds-credentials"
	if !strings.Contains(string(b), mounted) {
		t.Fatalf("the deploy bootstrap does not read the xDS credentials from %s", mounted)
	}
	if !strings.Contains(string(b), "envoy.stat_sinks.metrics_service") || !strings.Contains(string(b), "report_counters_as_deltas: true") {
		t.Error("the deploy bootstrap has no metrics service sink: allowed requests would go uncounted")
	}
	// Its stats matcher is the generated one.
	gen, err := BootstrapYAML(BootstrapConfig{XDSAddress: "127.0.0.1:18000"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range hostStatPatterns {
		want := p.GetPrefix() + p.GetSafeRegex().GetRegex()
		if !strings.Contains(string(gen), want) || !strings.Contains(string(b), want) {
			t.Errorf("host stat pattern %s: in the generated bootstrap %v, in deploy/base/envoy-bootstrap.yaml %v",
				want, strings.Contains(string(gen), want), strings.Contains(string(b), want))
		}
	}
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), mounted, credentialsDir(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path,
		"--log-level", "warn", "--disable-hot-restart").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("envoy --mode validate deploy/base/envoy-bootstrap.yaml: %v\n%s", err, out)
	}
}

// credentialsDir writes a gateway's xDS credentials from a throwaway CA.
func credentialsDir(t *testing.T) string {
	t.Helper()
	ca, err := identity.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.NewKeeper(identity.KeeperConfig{CA: ca, Name: "xds-client", Request: identity.Request{Namespace: "egressd-system", ServiceAccount: "egress-gateway"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "xds-credentials")
	if err := xdsauth.WriteCredentials(dir, k.Current()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBootstrapHostStats: by default the per-host stats are left out and
// a cluster's stats deferred; --host-stats keeps them.
func TestBootstrapHostStats(t *testing.T) {
	lean, err := Bootstrap(BootstrapConfig{XDSAddress: "127.0.0.1:18000"})
	if err != nil {
		t.Fatal(err)
	}
	if pats := lean.GetStatsConfig().GetStatsMatcher().GetExclusionList().GetPatterns(); len(pats) != len(hostStatPatterns) {
		t.Errorf("exclusion patterns %v", pats)
	}
	if !lean.GetDeferredStatOptions().GetEnableDeferredCreationStats() {
		t.Error("cluster stats are not deferred")
	}
	all, err := Bootstrap(BootstrapConfig{XDSAddress: "127.0.0.1:18000", HostStats: true})
	if err != nil {
		t.Fatal(err)
	}
	if all.GetStatsConfig() != nil {
		t.Errorf("host stats asked for, yet a stats matcher: %v", all.GetStatsConfig())
	}
}

// TestHostStatPatterns: the patterns drop a host's cluster and chains,
// and keep the gateway's own.
func TestHostStatPatterns(t *testing.T) {
	match := func(name string) bool {
		for _, p := range hostStatPatterns {
			if pre := p.GetPrefix(); pre != "" && strings.HasPrefix(name, pre) {
				return true
			}
			// Envoy's safe_regex must match the whole name (RE2 FullMatch).
			if re := p.GetSafeRegex().GetRegex(); re != "" && regexp.MustCompile(`^(?:`+re+`)$`).MatchString(name) {
				return true
			}
		}
		return false
	}
	for name, dropped := range map[string]bool{
		"cluster.outbound|443|tls|api.example.com.upstream_cx_total": true,
		"cluster.outbound|80||api.example.com.upstream_rq_200":       true,
		"tcp.tls|443|api.example.com.downstream_cx_total":            true,
		"tcp.mesh|tls|443|api.example.com.downstream_cx_total":       true,
		"tcp.tcp|5432|shop/db.downstream_cx_total":                   true,
		"tcp.tls|443|by_sni.downstream_cx_total":                     false,
		"tcp.tls|443|unlisted.downstream_cx_total":                   false,
		"tcp.tcp|443|unlisted.downstream_cx_total":                   false,
		"cluster.egressd_dynamic_tls.upstream_cx_total":              false,
		"http.egress_http_80.downstream_rq_total":                    false,
		"listener.0.0.0.0_10443.downstream_global_cx_overflow":       false,
		"server.memory_allocated":                                    false,
	} {
		if got := match(name); got != dropped {
			t.Errorf("%s: dropped %v, want %v", name, got, dropped)
		}
	}
}
