package serviceentry

import (
	"strings"
	"testing"
	"time"
)

const vsEntries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls, namespace: default}
spec:
  host: edition.cnn.com
  trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: SIMPLE}}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki, namespace: default}
spec:
  hosts: [www.wikipedia.org]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
`

func compileVS(t *testing.T, vs string) *Allowlist {
	t.Helper()
	return CompileYAML("vs.yaml", []byte(vsEntries+vs))
}

func problemsOf(a *Allowlist) string {
	var out []string
	for _, p := range a.Problems() {
		out = append(out, p.Error())
	}
	return strings.Join(out, "\n")
}

// TestVirtualServiceRoutes: the egress leg of a VirtualService routes a
// listed host port to another port (with the TLS its DestinationRule
// originates there), or makes an unlisted name reachable through a listed
// destination; the mesh leg (to the egress gateway service) changes
// nothing.
func TestVirtualServiceRoutes(t *testing.T) {
	a := compileVS(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]
    timeout: 5s
    retries: {attempts: 3, perTryTimeout: 1s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  tls:
  - match: [{port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: www.wikipedia.org, port: {number: 443}}}]
`)
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	_, hp, ok := a.MatchPort("edition.cnn.com", 80)
	if !ok || hp.Route == nil {
		t.Fatalf("edition.cnn.com:80 not routed: %+v\n%s", hp, problemsOf(a))
	}
	r := hp.Route
	if r.Host != "edition.cnn.com" || r.Port.Number != 443 || r.Port.Protocol != ProtocolHTTP || r.Entry == nil || r.Entry.Ref.Name != "cnn" {
		t.Errorf("route %+v", r)
	}
	if r.TLS == nil || r.TLS.Mode != TLSSimple || r.TLS.SNI != "edition.cnn.com" {
		t.Errorf("the route originates %+v, want SIMPLE with SNI edition.cnn.com (the DestinationRule's port 443)", r.TLS)
	}
	if r.Timeout != 5*time.Second || r.Retries == nil || r.Retries.Attempts != 3 || r.Retries.PerTryTimeout != time.Second {
		t.Errorf("timeout %v retries %+v", r.Timeout, r.Retries)
	}
	if r.VirtualService.String() != "default/cnn" || r.Field != "spec.http[1]" {
		t.Errorf("route names %s %s", r.VirtualService, r.Field)
	}
	h, hp, ok := a.MatchPort("en.wikipedia.org", 443)
	if !ok || h.Name != "*.wikipedia.org" || hp.Route == nil || hp.Route.Host != "www.wikipedia.org" || hp.Route.Entry.Ref.Name != "wiki" {
		t.Fatalf("en.wikipedia.org:443: %v %+v\n%s", ok, hp, problemsOf(a))
	}
	if _, _, ok := a.MatchPort("en.wikipedia.org", 80); ok {
		t.Error("the TLS route also allowed port 80")
	}
	// The version follows the routes.
	b := compileVS(t, "")
	if a.Version() == b.Version() {
		t.Error("the routes did not change the allowlist's version")
	}
}

// TestVirtualServiceNotApplied: what egressd cannot apply is a warning
// naming the field, and the host ports keep their own routing.
func TestVirtualServiceNotApplied(t *testing.T) {
	for name, tc := range map[string]struct {
		vs, want string
	}{
		"destination not listed": {
			vs:   "  hosts: [edition.cnn.com]\n  http: [{route: [{destination: {host: api.example.com, port: {number: 443}}}]}]\n",
			want: "spec.http[0]: routes edition.cnn.com port 80 to api.example.com port 443, which no ServiceEntry lists; the route is not applied",
		},
		"uri match": {
			vs:   "  hosts: [edition.cnn.com]\n  http: [{match: [{uri: {prefix: /a}}], route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]}]\n",
			want: "spec.http[0].match[0]: egressd routes by host and port only, so it does not apply this route (it matches on uri)",
		},
		"redirect": {
			vs:   "  hosts: [edition.cnn.com]\n  http: [{redirect: {uri: /b}}]\n",
			want: "spec.http[0]: egressd does not apply redirect at the gateway, so it does not apply this route",
		},
		"weighted split": {
			vs:   "  hosts: [edition.cnn.com]\n  http: [{route: [{destination: {host: edition.cnn.com, port: {number: 443}}, weight: 50}, {destination: {host: www.wikipedia.org}, weight: 50}]}]\n",
			want: "spec.http[0].route: egressd sends a route's traffic to one destination and does not split it by weight; it does not apply this route",
		},
		"TLS to an HTTP port": {
			vs:   "  hosts: [www.wikipedia.org]\n  tls: [{match: [{port: 443, sniHosts: [www.wikipedia.org]}], route: [{destination: {host: edition.cnn.com, port: {number: 80}}}]}]\n",
			want: "spec.tls[0]: routes TLS for www.wikipedia.org port 443 to edition.cnn.com port 80, which its ServiceEntry lists as HTTP; the route is not applied",
		},
	} {
		t.Run(name, func(t *testing.T) {
			a := compileVS(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: default}\nspec:\n"+tc.vs)
			if !strings.Contains(problemsOf(a), tc.want) {
				t.Fatalf("problems:\n%s\nwant one with %q", problemsOf(a), tc.want)
			}
			_, hp, _ := a.MatchPort("edition.cnn.com", 80)
			if hp.Route != nil {
				t.Errorf("a route was applied: %+v", hp.Route)
			}
		})
	}
}

// TestVirtualServiceUnderWildcard: routing a name a wildcard covers gives
// the name a host of its own that keeps the wildcard's other ports.
func TestVirtualServiceUnderWildcard(t *testing.T) {
	a := compileVS(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  http: [{match: [{port: 80}], route: [{destination: {host: edition.cnn.com, port: {number: 80}}}]}]
`)
	h, hp, ok := a.MatchPort("api.example.com", 80)
	if !ok || h.Name != "api.example.com" || hp.Route == nil || hp.Route.Host != "edition.cnn.com" {
		t.Fatalf("api.example.com:80: %v %+v\n%s", ok, hp, problemsOf(a))
	}
	if _, hp, ok := a.MatchPort("api.example.com", 8443); !ok || hp.Entry.Ref.Name != "wild" || hp.Route != nil {
		t.Errorf("api.example.com lost the wildcard's port 8443: %v %+v", ok, hp)
	}
	if _, hp, ok := a.MatchPort("www.example.com", 80); !ok || hp.Route != nil {
		t.Errorf("another name under the wildcard: %v %+v", ok, hp)
	}
}

// TestSidecarChangesVersion: a Sidecar alone changes the allowlist's
// version, so a reload that changes only it is published.
func TestSidecarChangesVersion(t *testing.T) {
	without := compileVS(t, "")
	with := compileVS(t, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: web}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n")
	if without.Version() == with.Version() {
		t.Fatal("the Sidecar did not change the version")
	}
	if len(with.Sidecars()) != 1 {
		t.Fatalf("sidecars: %+v\n%s", with.Sidecars(), problemsOf(with))
	}
}

// TestVirtualServiceTCPRouteAndOrder: a tcp route of a TLS port routes by
// SNI like a tls route (the older egress gateway task's form), and of two
// VirtualServices for one host and port the first by namespace/name
// applies, the other reported.
func TestVirtualServiceTCPRouteAndOrder(t *testing.T) {
	a := compileVS(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-second, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  tcp: [{match: [{port: 443}], route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-first, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  tcp: [{match: [{port: 443}], route: [{destination: {host: www.wikipedia.org, port: {number: 443}}}]}]
`)
	_, hp, ok := a.MatchPort("de.wikipedia.org", 443)
	if !ok || hp.Route == nil || hp.Route.Host != "www.wikipedia.org" || hp.Route.VirtualService.Name != "a-first" {
		t.Fatalf("de.wikipedia.org:443: %v %+v\n%s", ok, hp.Route, problemsOf(a))
	}
	if want := "is routed by VirtualService default/a-first already"; !strings.Contains(problemsOf(a), want) {
		t.Errorf("problems:\n%s\nwant %q", problemsOf(a), want)
	}
}
