package gateway

import (
	"slices"
	"strings"
	"testing"

	"github.com/egressd/egressd/serviceentry"
)

// TestProxyPlan: the proxy's CONNECT targets are the listed host ports
// with a cluster of their own (not port 80's HTTP hosts, which clients
// reach by absolute URI, nor wildcards or addresses), its absolute URIs
// take port 80's route table, and a ServiceEntry port that is the proxy's
// turns the proxy off with a warning rather than failing the plan.
func TestProxyPlan(t *testing.T) {
	const y = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ns}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8080, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: ns}
spec:
  hosts: [web.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: ns}
spec:
  hosts: ["*.wild.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
`
	a := serviceentry.CompileYAML("p.yaml", []byte(y))
	g, err := Plan(a, Options{ProxyPort: 3128, PortOffset: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	px := g.Proxy
	if px == nil || px.Listen != 13128 || px.HTTP == nil || px.HTTP.Port != 80 {
		t.Fatalf("proxy %+v", px)
	}
	var targets []string
	for _, c := range px.Connect {
		targets = append(targets, c.Authority+"="+c.Cluster)
	}
	want := []string{"api.example.com:443=outbound|443|tls|api.example.com", "api.example.com:8080=outbound|8080||api.example.com"}
	if !slices.Equal(targets, want) {
		t.Errorf("CONNECT targets %v, want %v", targets, want)
	}

	clash := serviceentry.CompileYAML("c.yaml", []byte(strings.ReplaceAll(y, "number: 8080", "number: 3128")))
	g, err = Plan(clash, Options{ProxyPort: 3128})
	if err != nil {
		t.Fatal(err)
	}
	if g.Proxy != nil || !slices.ContainsFunc(g.Warnings, func(w string) bool { return strings.Contains(w, "the proxy is off") }) {
		t.Errorf("an entry on the proxy's port: proxy %+v, warnings %v", g.Proxy, g.Warnings)
	}
	if err := g.Validate(); err != nil {
		t.Error(err)
	}
}
