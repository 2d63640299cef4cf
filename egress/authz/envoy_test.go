package authz

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/egressd/egressd/egress/envoy"
	"github.com/egressd/egressd/serviceentry"
)

// TestRealEnvoyValidates runs the real Envoy in validate mode on a static
// configuration with every golden case's filters: one HTTP listener (RBAC
// filters, then the router) and one TCP listener (RBAC filters, then
// tcp_proxy) per case. Envoy builds the filters as it would at run time,
// so it checks what protoc-gen-validate cannot: regular expressions, stat
// prefixes, the filters' own config checks.
func TestRealEnvoyValidates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real Envoy")
	}
	bin, err := envoy.Locate("", envoy.RepoCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
		Clusters: []*clusterv3.Cluster{{
			Name:                 "upstream",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		}},
	}}
	port := uint32(20000)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		policies, _ := loadPolicies(t, in)

		hcm := testHCM(name, HTTPFilters(policies))
		tcpFilters := append(NetworkFilters(policies), &listenerv3.Filter{
			Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
				StatPrefix: "tcp_" + name, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "upstream"},
			})},
		})
		for _, l := range []struct {
			suffix  string
			filters []*listenerv3.Filter
		}{
			{"http", []*listenerv3.Filter{hcm}},
			{"tcp", tcpFilters},
		} {
			b.StaticResources.Listeners = append(b.StaticResources.Listeners, testListener(name+"_"+l.suffix, port, l.filters))
			port++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", writeBootstrap(t, b), "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
}

// testHCM is an HTTP connection manager with filters, then the router,
// and one route that answers 204 to everything it lets through.
func testHCM(name string, filters []*hcmv3.HttpFilter) *listenerv3.Filter {
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "http_" + name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "routes_" + name,
			VirtualHosts: []*routev3.VirtualHost{{
				Name: "all", Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 204}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}
}

func testListener(name string, port uint32, filters []*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: filters}},
	}
}

// writeBootstrap writes b as JSON into a temporary file and returns its
// path.
func writeBootstrap(t *testing.T, b *bootstrapv3.Bootstrap) string {
	t.Helper()
	config, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(path, config, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRealEnvoyEnforcesHTTP sends requests through the real Envoy with
// HTTPFilters in front of a 204 route, and checks which are denied (403):
// hosts with any case and port, methods, paths without query, header
// conditions, destination ports, DENY before ALLOW.
func TestRealEnvoyEnforcesHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real Envoy")
	}
	bin, err := envoy.Locate("", envoy.RepoCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	policies := []*serviceentry.AuthorizationPolicy{
		policy("egress", "deny", serviceentry.AuthzDeny,
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{"blocked.example.com"}}}},
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Paths: []string{"/admin/*"}}}},
		),
		policy("egress", "allow", serviceentry.AuthzAllow,
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{"*.example.com"}, Methods: []string{"GET"}}}},
			serviceentry.AuthzRule{When: []serviceentry.AuthzCondition{{Key: "request.headers[x-team]", Values: []string{"platform"}}}},
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Paths: []string{"*.js"}, Ports: []string{fmt.Sprint(port)}}}},
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{"exact.test"}, Ports: []string{"1"}}}},
			serviceentry.AuthzRule{To: []serviceentry.AuthzOperation{{Hosts: []string{"api.partner.test"}, NotPaths: []string{"/private/*"}}}},
		),
	}
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
		Listeners: []*listenerv3.Listener{testListener("http", port, []*listenerv3.Filter{testHCM("enforce", HTTPFilters(policies))})},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", writeBootstrap(t, b), "--log-level", "warn", "--disable-hot-restart", "--concurrency", "1")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envoy did not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	tests := []struct {
		method, host, path string
		header             map[string]string
		want               int
	}{
		{"GET", "api.example.com", "/", nil, 204},
		{"GET", "API.Example.COM:8080", "/", nil, 204},
		{"GET", "example.com", "/", nil, 403},
		{"POST", "api.example.com", "/", nil, 403},
		{"POST", "other.test", "/", map[string]string{"X-Team": "platform"}, 204},
		{"POST", "other.test", "/", map[string]string{"X-Team": "platforms"}, 403},
		{"GET", "blocked.example.com", "/", nil, 403},
		{"GET", "Blocked.Example.com:443", "/", map[string]string{"X-Team": "platform"}, 403},
		{"GET", "api.example.com", "/admin/users?x=1", nil, 403},
		{"GET", "other.test", "/app.js?v=2", nil, 204},
		{"GET", "other.test", "/app.css", nil, 403},
		{"GET", "exact.test", "/", nil, 403},
		{"GET", "api.partner.test", "/public", nil, 204},
		{"GET", "api.partner.test:8443", "/private/key", nil, 403},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tt.host
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", tt.method, tt.host, tt.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s%s %v: status %d, want %d", tt.method, tt.host, tt.path, tt.header, resp.StatusCode, tt.want)
		}
	}
}
