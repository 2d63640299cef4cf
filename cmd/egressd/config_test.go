package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/egressd/egressd/dnsproxy"
	"github.com/egressd/egressd/serviceentry"
)

// defaultConfig is the Config of `egressd run` without flags, with
// XDG_RUNTIME_DIR=/run/user/1000.
func defaultConfig() Config {
	return Config{
		Source:                  "dir",
		LeaderElectionNamespace: "egressd-system",
		CredentialsNamespace:    "egressd-system",
		ConfigDir:               "examples",
		Outbound:                serviceentry.RegistryOnly,
		XDSListen:               "127.0.0.1:18000",
		Envoy:                   "managed",
		EnvoyPath:               "",
		EnvoyAdmin:              "127.0.0.1:15001",
		EnvoyLogLevel:           "warn",
		NodeID:                  "egress-gateway",
		RunDir:                  "/run/user/1000/egressd",
		GatewayAddress:          "127.0.0.1",
		PortOffset:              0,
		AccessLog:               "",
		DNSResolvers:            nil,
		ConnectTimeout:          5 * time.Second,
		LogLevel:                "info",
		LogFormat:               "json",
		AdminListen:             "127.0.0.1:15000",
		DecisionsKept:           50000,
		CertExpiryWarning:       30 * 24 * time.Hour,
		MeshPort:                15443,
		ProxyPort:               3128,
		MeshCADir:               "/run/user/1000/egressd/ca",
		TrustDomain:             "cluster.local",
		Scope: serviceentry.PolicyScope{RootNamespace: "istio-system", Workload: serviceentry.Workload{
			Namespace: "istio-system", Labels: map[string]string{"app": "istio-egressgateway", "istio": "egressgateway"}}},
		GatewayIdentity:       "egressd-system/egress-gateway",
		GatewayIdentities:     []string{"egressd-system/egress-gateway"},
		ControlPlaneIdentity:  "egressd-system/egressd",
		XDSClientCertTTL:      24 * time.Hour,
		GatewayResolverListen: "127.0.0.1:0",
		DecisionLogWindow:     time.Second,
		AllowedFlush:          2 * time.Second,
		DecisionLogMaxLines:   1000,
		EnvoyMaxHeap:          4 << 30,
		OnDemandClusters:      true,

		DNSListen:        "127.0.0.1:15053",
		DNSMode:          dnsproxy.ModeGateway,
		DNSGatewayIPs:    []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		DNSPassthrough:   []string{"cluster.local."},
		DNSRefuse:        "NXDOMAIN",
		DNSVIPRange:      netip.MustParsePrefix("240.240.0.0/16"),
		DNSUpstreamsFrom: "/etc/resolv.conf",
	}
}

// netipOpt lets cmp compare netip values (they have unexported fields).
var netipOpt = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestNewConfigDefaults(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	c, err := NewConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(defaultConfig(), *c, netipOpt); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
}

func TestNewConfigRunDirWithoutXDG(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	c, err := NewConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(os.TempDir(), fmt.Sprintf("egressd-%d", os.Getuid()))
	if c.RunDir != want {
		t.Errorf("RunDir = %q, want %q", c.RunDir, want)
	}
}

func TestNewConfigFlags(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	tests := map[string]struct {
		args []string
		want func(c *Config) // changes to defaultConfig
	}{
		"config":                 {[]string{"--config", "/etc/egressd"}, func(c *Config) { c.ConfigDir = "/etc/egressd" }},
		"outbound":               {[]string{"--outbound=ALLOW_ANY"}, func(c *Config) { c.Outbound = serviceentry.AllowAny }},
		"outbound, any case":     {[]string{"--outbound", " allow_any "}, func(c *Config) { c.Outbound = serviceentry.AllowAny }},
		"outbound registry only": {[]string{"-outbound=registry_only"}, func(c *Config) {}},
		"xds-listen":             {[]string{"--xds-listen=0.0.0.0:18001"}, func(c *Config) { c.XDSListen = "0.0.0.0:18001" }},
		"envoy external":         {[]string{"--envoy=external"}, func(c *Config) { c.Envoy = "external" }},
		"envoy managed":          {[]string{"--envoy=managed"}, func(c *Config) {}},
		"envoy-path":             {[]string{"--envoy-path=/usr/local/bin/envoy"}, func(c *Config) { c.EnvoyPath = "/usr/local/bin/envoy" }},
		"envoy-admin":            {[]string{"--envoy-admin=127.0.0.1:9901"}, func(c *Config) { c.EnvoyAdmin = "127.0.0.1:9901" }},
		"envoy-log-level":        {[]string{"--envoy-log-level=debug"}, func(c *Config) { c.EnvoyLogLevel = "debug" }},
		"node-id":                {[]string{"--node-id=gw-1"}, func(c *Config) { c.NodeID = "gw-1" }},
		"run-dir":                {[]string{"--run-dir=/var/run/egressd"}, func(c *Config) { c.RunDir = "/var/run/egressd"; c.MeshCADir = "/var/run/egressd/ca" }},
		"gateway-address": {
			[]string{"--gateway-address=0.0.0.0", "--dns-gateway-ip=198.18.0.1"},
			func(c *Config) {
				c.GatewayAddress, c.DNSGatewayIPs = "0.0.0.0", []netip.Addr{netip.MustParseAddr("198.18.0.1")}
			},
		},
		"gateway-address IPv6, no DNS proxy": {
			[]string{"--gateway-address=::", "--dns-listen="},
			func(c *Config) { c.GatewayAddress, c.DNSListen, c.DNSGatewayIPs = "::", "", nil },
		},
		"gateway-address specific IP answers DNS": {
			[]string{"--gateway-address=198.18.0.7"},
			func(c *Config) {
				c.GatewayAddress, c.DNSGatewayIPs = "198.18.0.7", []netip.Addr{netip.MustParseAddr("198.18.0.7")}
			},
		},
		"dns forward mode on 0.0.0.0 needs no gateway IP": {
			[]string{"--gateway-address=0.0.0.0", "--dns-mode=forward"},
			func(c *Config) { c.GatewayAddress, c.DNSMode, c.DNSGatewayIPs = "0.0.0.0", dnsproxy.ModeForward, nil },
		},
		"dns flags": {
			[]string{"--dns-listen=0.0.0.0:53", "--dns-gateway-ip=198.18.0.1,fd00::1", "--dns-upstream=10.96.0.10:53, 10.96.0.11:53",
				"--dns-passthrough-zones=cluster.local.,svc.example.", "--dns-refuse=refused", "--dns-vip-range=240.241.0.0/20",
				"--dns-allow-private", "--dns-resolv-conf=/tmp/resolv.conf", "--admin-listen="},
			func(c *Config) {
				c.DNSListen = "0.0.0.0:53"
				c.DNSGatewayIPs = []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd00::1")}
				c.DNSUpstreams = []string{"10.96.0.10:53", "10.96.0.11:53"}
				c.DNSPassthrough = []string{"cluster.local.", "svc.example."}
				c.DNSRefuse = "REFUSED"
				c.DNSVIPRange = netip.MustParsePrefix("240.241.0.0/20")
				c.DNSAllowPrivate = true
				c.DNSUpstreamsFrom = "/tmp/resolv.conf"
				c.AdminListen = ""
			},
		},
		"no pass-through zones":    {[]string{"--dns-passthrough-zones="}, func(c *Config) { c.DNSPassthrough = []string{} }},
		"port-offset":              {[]string{"--port-offset=10000"}, func(c *Config) { c.PortOffset = 10000 }},
		"port-offset at its limit": {[]string{"--port-offset=60000"}, func(c *Config) { c.PortOffset = 60000 }},
		"access-log":               {[]string{"--access-log=/var/log/egress.json"}, func(c *Config) { c.AccessLog = "/var/log/egress.json" }},
		"audit":                    {[]string{"--outbound=audit"}, func(c *Config) { c.Outbound = serviceentry.Audit }},
		"decisions-kept":           {[]string{"--decisions-kept=100"}, func(c *Config) { c.DecisionsKept = 100 }},
		"kubernetes source": {[]string{"--source=kubernetes", "--kubeconfig=/k", "--watch-namespaces=a,b", "--leader-elect"}, func(c *Config) {
			c.Source, c.Kubeconfig, c.WatchNamespaces, c.LeaderElect = "kubernetes", "/k", []string{"a", "b"}, true
			c.CertDir = "/run/user/1000/egressd/credentials"
			c.XDSCredentialsSecret = "egressd-system/egress-gateway-xds"
		}},
		"kubernetes source without the credentials Secret": {[]string{"--source=kubernetes", "--xds-credentials-secret=-"}, func(c *Config) {
			c.Source, c.CertDir = "kubernetes", "/run/user/1000/egressd/credentials"
		}},
		"kubernetes credentials": {[]string{"--source=kubernetes", "--credentials-namespace=istio-system", "--cert-dir=/c", "--xds-credentials-secret=gw/xds"}, func(c *Config) {
			c.Source, c.CredentialsNamespace, c.CertDir, c.XDSCredentialsSecret = "kubernetes", "istio-system", "/c", "gw/xds"
		}},
		"mesh off":             {[]string{"--mesh-port=0"}, func(c *Config) { c.MeshPort = 0 }},
		"mesh ca dir":          {[]string{"--mesh-ca-dir=/etc/cacerts"}, func(c *Config) { c.MeshCADir = "/etc/cacerts" }},
		"run dir moves the CA": {[]string{"--run-dir=/var/lib/egressd"}, func(c *Config) { c.RunDir = "/var/lib/egressd"; c.MeshCADir = "/var/lib/egressd/ca" }},
		"trust domain":         {[]string{"--trust-domain=example.org"}, func(c *Config) { c.TrustDomain = "example.org" }},
		"gateway identity": {[]string{"--gateway-identity=egress/gw"}, func(c *Config) {
			c.GatewayIdentity, c.GatewayIdentities = "egress/gw", []string{"egress/gw"}
		}},
		"gateway identities": {[]string{"--gateway-identity=egress/gw, egress/gw-canary"}, func(c *Config) {
			c.GatewayIdentity, c.GatewayIdentities = "egress/gw", []string{"egress/gw", "egress/gw-canary"}
		}},
		"control plane": {[]string{"--control-plane-identity=mesh/egressd", "--xds-server-names=egressd.example,10.0.0.9", "--xds-client-cert-ttl=1h", "--xds-insecure"}, func(c *Config) {
			c.ControlPlaneIdentity, c.XDSServerNames, c.XDSClientCertTTL, c.XDSInsecure = "mesh/egressd", []string{"egressd.example", "10.0.0.9"}, time.Hour, true
		}},
		"cert-dir":            {[]string{"--cert-dir=/etc/egressd/certs"}, func(c *Config) { c.CertDir = "/etc/egressd/certs" }},
		"cert-expiry-warning": {[]string{"--cert-expiry-warning=72h"}, func(c *Config) { c.CertExpiryWarning = 72 * time.Hour }},
		"gateway-dns": {
			[]string{"--gateway-dns= 1.1.1.1:53, [2001:db8::53]:5353 ,,"},
			func(c *Config) { c.DNSResolvers = []string{"1.1.1.1:53", "[2001:db8::53]:5353"} },
		},
		"gateway-dns empty": {[]string{"--gateway-dns="}, func(c *Config) {}},
		"address guard": {
			[]string{"--upstream-allow-cidrs=10.20.0.0/16, 192.168.7.7", "--gateway-self-cidrs=10.244.0.0/16"},
			func(c *Config) {
				c.UpstreamAllow = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("192.168.7.7/32")}
				c.GatewaySelf = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
			},
		},
		"gateway resolver": {
			[]string{"--gateway-resolver-listen=0.0.0.0:15054", "--gateway-resolver-address=egressd.egressd-system.svc:15054"},
			func(c *Config) {
				c.GatewayResolverListen, c.GatewayResolverAddress = "0.0.0.0:15054", "egressd.egressd-system.svc:15054"
			},
		},
		"decision log": {
			[]string{"--decision-log-window=0", "--decision-log-max-lines=50"},
			func(c *Config) { c.DecisionLogWindow, c.DecisionLogMaxLines = 0, 50 },
		},
		"envoy bounds": {
			[]string{"--envoy-max-heap=512Mi", "--envoy-max-connections=2000"},
			func(c *Config) { c.EnvoyMaxHeap, c.EnvoyMaxConnections = 512<<20, 2000 },
		},
		"envoy heap unbounded": {[]string{"--envoy-max-heap=0"}, func(c *Config) { c.EnvoyMaxHeap = 0 }},
		"envoy host stats":     {[]string{"--envoy-host-stats"}, func(c *Config) { c.EnvoyHostStats = true }},
		"every cluster sent":   {[]string{"--on-demand-clusters=false"}, func(c *Config) { c.OnDemandClusters = false }},
		"allowed one by one":   {[]string{"--allowed-flush=0"}, func(c *Config) { c.AllowedFlush = 0 }},
		"allowed sampled":      {[]string{"--allowed-sample=2.5"}, func(c *Config) { c.AllowedSample = 2.5 }},
		"connect-timeout":      {[]string{"--connect-timeout=1m30s"}, func(c *Config) { c.ConnectTimeout = 90 * time.Second }},
		"log-level":            {[]string{"--log-level=debug"}, func(c *Config) { c.LogLevel = "debug" }},
		"log-format console":   {[]string{"--log-format=console"}, func(c *Config) { c.LogFormat = "console" }},
		"several": {
			[]string{"--envoy", "external", "--port-offset", "10000", "--outbound", "ALLOW_ANY", "--log-format", "console"},
			func(c *Config) {
				c.Envoy, c.PortOffset, c.Outbound, c.LogFormat = "external", 10000, serviceentry.AllowAny, "console"
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			c, err := NewConfig(tt.args, &out)
			if err != nil {
				t.Fatalf("NewConfig(%q): %v\n%s", tt.args, err, out.String())
			}
			want := defaultConfig()
			tt.want(&want)
			if d := cmp.Diff(want, *c, netipOpt); d != "" {
				t.Errorf("NewConfig(%q) (-want +got):\n%s", tt.args, d)
			}
			if out.Len() != 0 {
				t.Errorf("unexpected output:\n%s", out.String())
			}
		})
	}
}

func TestNewConfigInvalid(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
		// wantUsage: the flag package printed the error and the usage.
		wantUsage bool
	}{
		"outbound":                  {args: []string{"--outbound=DENY"}, want: `--outbound: unknown outbound mode "DENY": use REGISTRY_ONLY, ALLOW_ANY or AUDIT`},
		"outbound empty":            {args: []string{"--outbound="}, want: `--outbound: unknown outbound mode "": use REGISTRY_ONLY, ALLOW_ANY or AUDIT`},
		"decisions-kept zero":       {args: []string{"--decisions-kept=0"}, want: `--decisions-kept: 0: must be at least 1`},
		"source":                    {args: []string{"--source=etcd"}, want: `--source: "etcd": use dir or kubernetes`},
		"gateway identity":          {args: []string{"--gateway-identity=gw"}, want: `--gateway-identity: "gw": want namespace/serviceaccount`},
		"gateway identity empty":    {args: []string{"--gateway-identity= ,"}, want: `--gateway-identity: at least one namespace/serviceaccount`},
		"control plane identity":    {args: []string{"--control-plane-identity=egressd"}, want: `--control-plane-identity: "egressd": want namespace/serviceaccount`},
		"client cert ttl":           {args: []string{"--xds-client-cert-ttl=1s"}, want: `--xds-client-cert-ttl: 1s: at least 10s`},
		"credentials secret":        {args: []string{"--xds-credentials-secret=xds"}, want: `--xds-credentials-secret: "xds": want namespace/name`},
		"mesh port":                 {args: []string{"--mesh-port=70000"}, want: `--mesh-port: 70000 is not a port`},
		"envoy":                     {args: []string{"--envoy=docker"}, want: `--envoy: "docker" is neither managed nor external`},
		"envoy, case matters":       {args: []string{"--envoy=Managed"}, want: `--envoy: "Managed" is neither managed nor external`},
		"gateway-address host name": {args: []string{"--gateway-address=localhost"}, want: `--gateway-address: "localhost" is not an IP address`},
		"gateway-address with port": {args: []string{"--gateway-address=127.0.0.1:80"}, want: `--gateway-address: "127.0.0.1:80" is not an IP address`},
		"gateway-address empty":     {args: []string{"--gateway-address="}, want: `--gateway-address: "" is not an IP address`},
		"port-offset too large":     {args: []string{"--port-offset=60001"}, want: `--port-offset: 60001 leaves no room for service ports`},
		"port-offset negative": {
			args: []string{"--port-offset=-1"}, want: `invalid value "-1" for flag -port-offset: parse error`, wantUsage: true,
		},
		"gateway-dns without port": {args: []string{"--gateway-dns=1.1.1.1"}, want: `--gateway-dns: "1.1.1.1" is not ip:port`},
		"gateway-dns host name":    {args: []string{"--gateway-dns=1.1.1.1:53,dns.google:53"}, want: `--gateway-dns: "dns.google:53" is not ip:port`},
		"gateway-dns IPv6 without brackets": {
			args: []string{"--gateway-dns=2001:db8::53:53"}, want: `--gateway-dns: "2001:db8::53:53" is not ip:port`,
		},
		"connect-timeout zero": {args: []string{"--connect-timeout=0s"}, want: `--connect-timeout must be positive`},
		"upstream-allow-cidrs": {args: []string{"--upstream-allow-cidrs=10.0.0.0/33"},
			want: `--upstream-allow-cidrs: "10.0.0.0/33" is neither a CIDR range (10.20.0.0/16) nor an IP address`},
		"gateway-self-cidrs":      {args: []string{"--gateway-self-cidrs=gw"}, want: `--gateway-self-cidrs: "gw" is neither a CIDR range (10.20.0.0/16) nor an IP address`},
		"gateway-resolver-listen": {args: []string{"--gateway-resolver-listen=localhost:53"}, want: `--gateway-resolver-listen: "localhost:53" is not ip:port`},
		"gateway-resolver-address": {args: []string{"--gateway-resolver-address=egressd"},
			want: `--gateway-resolver-address: "egressd" is not host:port`},
		"decision-log-max-lines": {args: []string{"--decision-log-max-lines=0"}, want: `--decision-log-max-lines: 0: must be at least 1`},
		"envoy-max-heap":         {args: []string{"--envoy-max-heap=1G"}, want: `--envoy-max-heap: "1G" is not a size such as 512Mi or 2Gi`},
		"allowed-flush":          {args: []string{"--allowed-flush=10ms"}, want: `--allowed-flush: 10ms: 0, or at least 100ms`},
		"allowed-sample":         {args: []string{"--allowed-sample=101"}, want: `--allowed-sample: 101: a percentage from 0 to 100`},
		"envoy-max-heap too small": {args: []string{"--envoy-max-heap=1Mi"},
			want: `--envoy-max-heap: 1Mi is too small for Envoy (at least 32Mi)`},
		"connect-timeout negative": {args: []string{"--connect-timeout=-1s"}, want: `--connect-timeout must be positive`},
		"connect-timeout without unit": {
			args: []string{"--connect-timeout=5"}, want: `invalid value "5" for flag -connect-timeout: parse error`, wantUsage: true,
		},
		"0.0.0.0 without dns-gateway-ip": {
			args: []string{"--gateway-address=0.0.0.0"},
			want: `--dns-gateway-ip: required when --gateway-address is 0.0.0.0 (the DNS proxy must answer with an address clients can reach)`,
		},
		"dns-mode":                     {args: []string{"--dns-mode=proxy"}, want: `--dns-mode: unknown DNS mode "proxy": use gateway or forward`},
		"dns-gateway-ip":               {args: []string{"--dns-gateway-ip=gw.local"}, want: `--dns-gateway-ip: "gw.local" is not an IP address`},
		"dns-refuse":                   {args: []string{"--dns-refuse=SERVFAIL"}, want: `--dns-refuse: "SERVFAIL" is neither NXDOMAIN nor REFUSED`},
		"dns-vip-range":                {args: []string{"--dns-vip-range=240.240.0.0"}, want: `--dns-vip-range: "240.240.0.0" is not a CIDR range`},
		"log-format":                   {args: []string{"--log-format=text"}, want: `--log-format: "text" is neither json nor console`},
		"extra argument":               {args: []string{"serve"}, want: `unexpected arguments: serve`},
		"extra arguments after flags":  {args: []string{"--config", "dir", "a", "b"}, want: `unexpected arguments: a b`},
		"flag after an extra argument": {args: []string{"dir", "--envoy=external"}, want: `unexpected arguments: dir --envoy=external`},
		"unknown flag": {
			args: []string{"--listen=:80"}, want: `flag provided but not defined: -listen`, wantUsage: true,
		},
		"help": {args: []string{"-h"}, want: flag.ErrHelp.Error(), wantUsage: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			c, err := NewConfig(tt.args, &out)
			if err == nil {
				t.Fatalf("NewConfig(%q) = %+v, want error %q", tt.args, c, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("NewConfig(%q) error:\n got %q\nwant %q", tt.args, err, tt.want)
			}
			if usage := strings.Contains(out.String(), "Usage of egressd run:"); usage != tt.wantUsage {
				t.Errorf("usage printed = %v, want %v; output:\n%s", usage, tt.wantUsage, out.String())
			}
		})
	}
}

func TestNewConfigHelpIsErrHelp(t *testing.T) {
	_, err := NewConfig([]string{"--help"}, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("NewConfig(--help) error = %v, want flag.ErrHelp", err)
	}
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewConfig([]string{"--admin-token-file", file}, io.Discard)
	if err != nil || c.AdminToken != "s3cret" {
		t.Fatalf("token %q, %v", c.AdminToken, err)
	}
	if err := os.WriteFile(file, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConfig([]string{"--admin-token-file", file}, io.Discard); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := NewConfig([]string{"--admin-token-file", filepath.Join(dir, "missing")}, io.Discard); err == nil {
		t.Error("a missing token file was accepted")
	}
}
