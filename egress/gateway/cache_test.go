package gateway

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/gen"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// secretNames is a SecretNames for the tests' DestinationRules.
func secretNames(o *serviceentry.Origination) (string, string) {
	return "client/" + o.Rule.String(), "ca/" + o.Rule.String()
}

// TestPlanWithCacheEqualsPlan changes a generated configuration one entry
// at a time (a host added, an entry dropped, a port's protocol changed,
// an entry put back) and checks that planning with the cache of the last
// plan gives exactly the model a fresh Plan gives, with the mesh listener
// on and off and in every outbound mode, and that the ports no change
// touched are reused.
func TestPlanWithCacheEqualsPlan(t *testing.T) {
	cfg, problems := serviceentry.ParseConfig("gen.yaml", gen.ServiceEntries(400, 7))
	if len(problems) > 0 {
		t.Fatalf("generated configuration: %v", problems)
	}
	for _, o := range []Options{
		{SecretNames: secretNames},
		{SecretNames: secretNames, MeshPort: 15443},
		{SecretNames: secretNames, MeshPort: 15443, Outbound: serviceentry.AllowAny, AlwaysHTTPPorts: []uint32{80}, AlwaysTLSPorts: []uint32{443}},
		{SecretNames: secretNames, Outbound: serviceentry.Audit},
	} {
		t.Run(fmt.Sprintf("mesh=%d/%s", o.MeshPort, o.Outbound), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var cache Cache
			c := cfg
			var last *Gateway
			reused := 0
			for step := range 60 {
				c.Entries = slices.Clone(c.Entries)
				i := r.IntN(len(c.Entries))
				e := *c.Entries[i]
				switch step % 4 {
				case 0: // a host added
					e.Hosts = append(slices.Clone(e.Hosts), fmt.Sprintf("added-%d.cache.example", step))
					c.Entries[i] = &e
				case 1: // an entry dropped
					c.Entries = slices.Delete(c.Entries, i, i+1)
				case 2: // a port's protocol changed (HTTP and TCP swap classes)
					e.Ports = slices.Clone(e.Ports)
					if e.Ports[0].Protocol == serviceentry.ProtocolHTTP {
						e.Ports[0].Protocol = serviceentry.ProtocolTLS
					} else {
						e.Ports[0].Protocol = serviceentry.ProtocolHTTP
					}
					c.Entries[i] = &e
				case 3: // the same configuration parsed again: new pointers, same content
					again, _ := serviceentry.ParseConfig("gen.yaml", gen.ServiceEntries(400, 7))
					c = again
				}
				a := serviceentry.CompileConfig(c, nil)
				want, err := Plan(a, o)
				if err != nil {
					t.Fatal(err)
				}
				got, err := PlanWith(a, o, &cache)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d: the model planned with the cache differs from Plan's:\n%s", step, firstDifference(got, want))
				}
				if last != nil {
					for _, p := range got.Ports {
						if lp := last.port(p.Number); lp == p {
							reused++
						}
					}
				}
				last = got
			}
			if reused == 0 {
				t.Fatal("no port was reused from the cache in 60 one-entry changes")
			}
		})
	}
}

// TestCacheDropsOnOptionChange: a cache planned with other options, or
// other listener ports, is not reused.
func TestCacheDropsOnOptionChange(t *testing.T) {
	cfg, _ := serviceentry.ParseConfig("gen.yaml", gen.ServiceEntries(50, 3))
	a := serviceentry.CompileConfig(cfg, nil)
	var cache Cache
	first, err := PlanWith(a, Options{SecretNames: secretNames}, &cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{SecretNames: secretNames, PortOffset: 10000},
		{SecretNames: secretNames, Outbound: serviceentry.AllowAny},
		{SecretNames: func(o *serviceentry.Origination) (string, string) { return "x", "y" }},
	} {
		g, err := PlanWith(a, o, &cache)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Plan(a, o)
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("options %+v: the model differs from Plan's:\n%s", o, firstDifference(g, want))
		}
		for _, p := range g.Ports {
			if first.port(p.Number) == p {
				t.Fatalf("options %+v: port %d reused from a plan with other options", o, p.Number)
			}
		}
	}
}

// firstDifference names the first port or cluster that differs.
func firstDifference(got, want *Gateway) string {
	for i := range min(len(got.Ports), len(want.Ports)) {
		if !reflect.DeepEqual(got.Ports[i], want.Ports[i]) {
			return fmt.Sprintf("port %d:\n got  %+v\n want %+v", want.Ports[i].Number, got.Ports[i], want.Ports[i])
		}
	}
	for i := range min(len(got.Clusters), len(want.Clusters)) {
		if !reflect.DeepEqual(got.Clusters[i], want.Clusters[i]) {
			return fmt.Sprintf("cluster %s:\n got  %+v\n want %+v", want.Clusters[i].Name, got.Clusters[i], want.Clusters[i])
		}
	}
	if !reflect.DeepEqual(got.Mesh, want.Mesh) {
		return "the mesh listener"
	}
	return fmt.Sprintf("ports %d/%d, clusters %d/%d, warnings %q/%q", len(got.Ports), len(want.Ports), len(got.Clusters), len(want.Clusters), got.Warnings, want.Warnings)
}

// TestCacheReusesClustersOfReplannedPort: a host added to a port replans
// that port, and its other hosts keep their cluster models.
func TestCacheReusesClustersOfReplannedPort(t *testing.T) {
	const doc = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [%s]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`
	var cache Cache
	first, err := PlanWith(compile(t, fmt.Sprintf(doc, "b.example.com")), Options{}, &cache)
	if err != nil {
		t.Fatal(err)
	}
	second, err := PlanWith(compile(t, fmt.Sprintf(doc, "b.example.com, c.example.com")), Options{}, &cache)
	if err != nil {
		t.Fatal(err)
	}
	if first.port(443) == second.port(443) {
		t.Fatal("port 443 was reused though a host was added to it")
	}
	a := vocab.PassthroughClusterName("a.example.com", 443)
	if first.cluster(a) == nil || first.cluster(a) != second.cluster(a) {
		t.Fatalf("cluster %s was planned again though its host did not change", a)
	}
	c := vocab.PassthroughClusterName("c.example.com", 443)
	if second.cluster(c) == nil {
		t.Fatalf("no cluster %s for the added host", c)
	}
}

// TestPlanScopesPolicies: with the gateway's scope, the mesh listener
// enforces only the policies Istio would apply to it, takes the most
// specific PeerAuthentication's mode, and lists the rest as not applied.
func TestPlanScopesPolicies(t *testing.T) {
	const doc = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway-policy, namespace: egress}
spec:
  action: DENY
  rules: [{to: [{operation: {hosts: [a.example.com]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: app-policy, namespace: bookinfo}
spec:
  action: DENY
  rules: [{to: [{operation: {hosts: [a.example.com]}}]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: gateway, namespace: egress}
spec:
  selector: {matchLabels: {app: gw}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: app, namespace: bookinfo}
spec:
  mtls: {mode: DISABLE}
`
	a := compile(t, doc)
	scope := &serviceentry.PolicyScope{Workload: serviceentry.Workload{Namespace: "egress", Labels: map[string]string{"app": "gw"}}}
	g, err := Plan(a, Options{MeshPort: 15443, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range g.Mesh.Policies {
		names = append(names, p.Ref.String())
	}
	if !slices.Contains(names, "egress/gateway-policy") || slices.Contains(names, "bookinfo/app-policy") {
		t.Errorf("mesh policies %v: want egress/gateway-policy and not bookinfo/app-policy", names)
	}
	if g.Mesh.Mode != serviceentry.MTLSStrict {
		t.Errorf("mesh mode %s, want the workload policy's STRICT over the mesh-wide PERMISSIVE", g.Mesh.Mode)
	}
	var ignored []string
	for _, n := range g.NotApplied {
		ignored = append(ignored, n.Ref.Kind+" "+n.Ref.String())
	}
	if want := []string{"AuthorizationPolicy bookinfo/app-policy", "PeerAuthentication bookinfo/app"}; !slices.Equal(ignored, want) {
		t.Errorf("not applied %v, want %v", ignored, want)
	}
	// Without a scope every policy applies, as before.
	all, err := Plan(a, Options{MeshPort: 15443})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.NotApplied) != 0 || len(all.Mesh.Policies) < 2 {
		t.Errorf("without a scope: %d not applied, %d policies", len(all.NotApplied), len(all.Mesh.Policies))
	}
}
