package xds

import (
	"net/netip"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/egressd/egressd/serviceentry"
)

const scopedYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: team-a}
spec:
  hosts: [a.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: team-b}
spec:
  hosts: [b.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-a}
spec:
  egress: [{hosts: ["./*"]}]
`

// TestSourceScopeResources: with Options.SourceScope every plaintext HTTP
// connection manager and TLS chain names its port's ECDS resource, each
// named one is published, and new pods change those resources alone.
func TestSourceScopeResources(t *testing.T) {
	c, problems := serviceentry.ParseConfig("s.yaml", []byte(scopedYAML))
	a := serviceentry.CompileConfig(c, problems)
	opts := DefaultOptions()
	opts.SourceScope, opts.ProxyPort = true, 3128
	pods := map[string][]netip.Addr{"team-a": {netip.MustParseAddr("10.0.0.1")}}
	res, err := translate(a, opts, nil, nil, pods)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Validate(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range res.Extensions {
		names = append(names, e.Name)
	}
	want := []string{SourceScopeName(80, true), SourceScopeName(443, false)}
	if !slices.Equal(names, want) {
		t.Fatalf("extensions %v, want %v", names, want)
	}
	// The listeners name exactly those, by ECDS.
	named := map[string]bool{}
	for _, l := range res.Listeners {
		walkFilters(l, func(name string, cd *corev3.ExtensionConfigSource) {
			if cd != nil && l.Name == ProxyListenerName {
				t.Errorf("the proxy listener names %s: port 80's scope would judge its CONNECTs", name)
			}
			if cd != nil {
				named[name] = true
			}
		})
	}
	for _, n := range want {
		if !named[n] {
			t.Errorf("no listener names %s", n)
		}
	}
	if len(named) != len(want) {
		t.Errorf("listeners name %v", named)
	}
	var httpRBAC rbachttpv3.RBAC
	if err := res.Extensions[0].TypedConfig.UnmarshalTo(&httpRBAC); err != nil {
		t.Fatal(err)
	}
	if p := httpRBAC.GetRules().GetPolicies()["team-a/source-scope#0"]; p == nil {
		t.Errorf("HTTP scope has no team-a policy: %v", httpRBAC.GetRules())
	}
	var tlsRBAC rbacnetworkv3.RBAC
	if err := res.Extensions[1].TypedConfig.UnmarshalTo(&tlsRBAC); err != nil {
		t.Fatal(err)
	}
	if len(tlsRBAC.GetRules().GetPolicies()) != 1 {
		t.Errorf("TLS scope: %v", tlsRBAC.GetRules())
	}

	// Other pods: only the extensions differ.
	_, before := res.digests()
	again, err := translate(a, opts, nil, nil, map[string][]netip.Addr{"team-a": {netip.MustParseAddr("10.0.0.2")}})
	if err != nil {
		t.Fatal(err)
	}
	_, after := again.digests()
	for typ, byName := range after {
		for n, d := range byName {
			if changed := before[typ][n] != d; changed != (typ == resourcev3.ExtensionConfigType) {
				t.Errorf("%s %s changed %v with the pods", typ, n, changed)
			}
		}
	}

	// Without the option nothing of it.
	plain, err := Translate(a, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Extensions) != 0 {
		t.Errorf("extensions without SourceScope: %v", plain.Extensions)
	}
}

// walkFilters calls f with every network and HTTP filter of l and its
// config_discovery (nil for a typed config).
func walkFilters(l *listenerv3.Listener, f func(name string, cd *corev3.ExtensionConfigSource)) {
	chains := slices.Clone(l.GetFilterChains())
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, nf := range fc.GetFilters() {
			f(nf.GetName(), nf.GetConfigDiscovery())
			var hcm hcmv3.HttpConnectionManager
			if nf.GetTypedConfig().MessageIs(&hcm) {
				if err := nf.GetTypedConfig().UnmarshalTo(&hcm); err == nil {
					for _, hf := range hcm.GetHttpFilters() {
						f(hf.GetName(), hf.GetConfigDiscovery())
					}
				}
			}
		}
	}
}
