package xds

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dfphttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_forward_proxy/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/rbac/matchers/upstream_ip_port/v3"
	"sigs.k8s.io/yaml"

	"github.com/egressd/egressd/internal/testkit"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
)

// compileFile reads one input case into an allowlist.
func compileFile(t *testing.T, path string) *serviceentry.Allowlist {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return serviceentry.CompileYAML(filepath.Base(path), data)
}

// testSecretNames names SDS secrets in golden files the way egressd's
// origination package does, without depending on it.
func testSecretNames(o *serviceentry.Origination) (client, ca string) {
	if o.CredentialName != "" {
		return "client/" + o.CredentialName, "ca/" + o.CredentialName
	}
	ca = "ca/system"
	if o.CACertificates != "" {
		ca = "ca/file:" + o.CACertificates
	}
	return "client/file:" + o.ClientCertificate + "," + o.PrivateKey, ca
}

// goldenOptions are the options of every golden case; a case whose name
// ends in "allow-any" runs under ALLOW_ANY, one ending in "audit" under
// AUDIT.
func goldenOptions(name string) Options {
	o := Options{ListenAddress: "0.0.0.0", AccessLogPath: "/dev/stdout", ALSCluster: "egressd_xds", SummarizeAllowed: true, SecretNames: testSecretNames,
		DNSResolvers: []string{"127.0.0.1:15054"},
		OwnPorts:     []uint32{15001},
		Guard: netguard.Policy{
			Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
			Self:  []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32")},
		}}
	switch {
	case strings.HasSuffix(name, "allow-any"):
		o.Outbound = serviceentry.AllowAny
	case strings.HasSuffix(name, "audit"):
		o.Outbound = serviceentry.Audit
	case strings.HasSuffix(name, "mesh"):
		o.Mesh = testMesh
	case strings.HasSuffix(name, "on-demand"):
		o.ODCDSCluster = "egressd_xds"
		o.Mesh = testMesh
	}
	return o
}

// TestTranslateGolden: testdata/in/<case>.yaml -> testdata/out/<case>.*:
// the gateway model (ir.yaml) and the xDS resources it is built into.
// Regenerate with `go test ./egress/xds -run Golden -update`.
func TestTranslateGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	golden := testkit.NewGolden("testdata/out")
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			a := compileFile(t, in)
			res, err := Translate(a, goldenOptions(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Validate(); err != nil {
				t.Fatal(err)
			}
			if _, err := res.Snapshot(res.Version()); err != nil {
				t.Fatal(err)
			}
			var problems []string
			for _, p := range a.Problems() {
				problems = append(problems, string(p.Severity)+": "+p.Error())
			}
			for _, w := range res.Warnings {
				problems = append(problems, "translation: "+w)
			}
			ir, err := yaml.Marshal(res.Gateway)
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Gateway.Validate(); err != nil {
				t.Errorf("the gateway model is invalid: %v", err)
			}
			var onDemand []string
			for _, c := range res.Clusters {
				if res.OnDemand(c.Name) {
					onDemand = append(onDemand, c.Name)
				}
			}
			outputs := map[string][]byte{
				"ir.yaml":        ir,
				"listeners.yaml": testkit.ProtoYAML(t, res.Listeners),
				"routes.yaml":    testkit.ProtoYAML(t, res.Routes),
				"clusters.yaml":  testkit.ProtoYAML(t, res.Clusters),
				"problems.txt":   []byte(strings.Join(problems, "\n") + "\n"),
			}
			if len(onDemand) > 0 {
				// The clusters Envoy asks for by name; the rest it is sent.
				outputs["ondemand.txt"] = []byte(strings.Join(onDemand, "\n") + "\n")
			}
			for suffix, got := range outputs {
				golden.Check(t, name+"."+suffix, got)
			}
		})
	}
	golden.Stale(t, "*")
}

// TestTranslateDeterministic: the same allowlist twice gives the same bytes.
func TestTranslateDeterministic(t *testing.T) {
	for _, in := range []string{"testdata/in/tls-passthrough.yaml", "testdata/in/tcp-addresses.yaml", "testdata/in/http-static.yaml"} {
		a1, a2 := compileFile(t, in), compileFile(t, in)
		r1, err := Translate(a1, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Translate(a2, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r1.Version() != r2.Version() {
			t.Errorf("%s: versions differ: %s vs %s", in, r1.Version(), r2.Version())
		}
		if a1.Version() != a2.Version() {
			t.Errorf("%s: allowlist versions differ", in)
		}
	}
}

// TestGuardFollowsTheForwardProxy: in every golden case, an HTTP
// connection manager that forwards dynamically saves the resolved address
// and checks it right after (the guard needs the address; without the
// forward proxy before it, it would check nothing), and every one strips
// the caller's headers first.
func TestGuardFollowsTheForwardProxy(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/in/*.yaml")
	guarded := 0
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		res, err := Translate(compileFile(t, in), goldenOptions(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, hcm := range httpManagers(t, res) {
			filters := hcm.GetHttpFilters()
			if filters[0].GetName() != "envoy.filters.http.header_mutation" {
				t.Errorf("%s: %s: first filter %s, want the header strip", name, hcm.GetStatPrefix(), filters[0].GetName())
			}
			for i, f := range filters {
				if f.GetName() != "envoy.filters.http.dynamic_forward_proxy" {
					continue
				}
				var cfg dfphttpv3.FilterConfig
				if err := f.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
					t.Fatal(err)
				}
				if !cfg.GetSaveUpstreamAddress() {
					t.Errorf("%s: %s: the forward proxy does not save the upstream address", name, hcm.GetStatPrefix())
				}
				if i+1 >= len(filters) || filters[i+1].GetName() != guardFilterName {
					t.Errorf("%s: %s: no address guard right after the forward proxy", name, hcm.GetStatPrefix())
				}
				guarded++
			}
		}
	}
	if guarded == 0 {
		t.Fatal("no golden case forwards dynamically")
	}
}

// httpManagers returns every HTTP connection manager of res's listeners.
func httpManagers(t *testing.T, res *Resources) []*hcmv3.HttpConnectionManager {
	t.Helper()
	var out []*hcmv3.HttpConnectionManager
	for _, l := range res.Listeners {
		for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				if f.GetName() != "envoy.filters.network.http_connection_manager" {
					continue
				}
				hcm := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
				out = append(out, hcm)
			}
		}
	}
	return out
}

// TestGuardOwnPortsOnLoopback: the gateway's own ports on loopback are a
// forwarding loop even when the operator allows loopback; other loopback
// ports follow the allowed ranges.
func TestGuardOwnPortsOnLoopback(t *testing.T) {
	o := goldenOptions("guard")
	o.OwnPorts = []uint32{15001, 15000, 15001}
	o.Guard.Allow = append(o.Guard.Allow, netip.MustParsePrefix("127.0.0.0/8"))
	rbac := guardRBAC(o, nil)
	loop := rbac.GetRules().GetPolicies()[GuardPolicyLoop]
	var ports []string
	for _, r := range loop.GetPermissions()[0].GetOrRules().GetRules() {
		var m upstreamipv3.UpstreamIpPortMatcher
		if err := r.GetMatcher().GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		if pr := m.GetUpstreamPortRange(); pr != nil {
			ports = append(ports, fmt.Sprintf("%s/%d:%d-%d", m.GetUpstreamIp().GetAddressPrefix(), m.GetUpstreamIp().GetPrefixLen().GetValue(), pr.GetStart(), pr.GetEnd()))
		} else {
			ports = append(ports, fmt.Sprintf("%s/%d", m.GetUpstreamIp().GetAddressPrefix(), m.GetUpstreamIp().GetPrefixLen().GetValue()))
		}
	}
	want := "198.18.0.1/32 127.0.0.0/8:15000-15001 ::1/128:15000-15001 127.0.0.0/8:15001-15002 ::1/128:15001-15002"
	if got := strings.Join(ports, " "); got != want {
		t.Errorf("loop matchers %s, want %s", got, want)
	}
	// The blocked policy excludes the loop's matches, so the two never
	// both match.
	blocked := rbac.GetRules().GetPolicies()[GuardPolicyBlocked].GetPermissions()[0].GetAndRules().GetRules()
	if len(blocked) != 3 || blocked[1].GetNotRule() == nil {
		t.Errorf("blocked rules %v", blocked)
	}
}
