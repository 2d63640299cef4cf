package gateway

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

func compile(t *testing.T, doc string) *serviceentry.Allowlist {
	t.Helper()
	a := serviceentry.CompileYAML("case.yaml", []byte(doc))
	if errs := a.Errors(); len(errs) > 0 {
		t.Fatalf("problems: %v", errs)
	}
	return a
}

func plan(t *testing.T, doc string, o Options) *Gateway {
	t.Helper()
	g, err := Plan(compile(t, doc), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("Plan's model is invalid: %v", err)
	}
	return g
}

func (g *Gateway) port(n uint32) *Port {
	for _, p := range g.Ports {
		if p.Number == n {
			return p
		}
	}
	return nil
}

func chainNames(p *Port) []string {
	var out []string
	for _, c := range p.Chains {
		out = append(out, c.Name)
	}
	return out
}

func (g *Gateway) cluster(name string) *Cluster {
	for _, c := range g.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const tlsHosts = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: exact, namespace: ns}
spec:
  hosts: [api.example.com, www.wild.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
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

// TestPlanTLSChains: which TLS hosts get a chain of their own, per
// outbound mode.
func TestPlanTLSChains(t *testing.T) {
	for mode, want := range map[serviceentry.OutboundMode][]string{
		// api.example.com is found by SNI; the host under the wildcard
		// and the wildcard itself need chains.
		serviceentry.RegistryOnly: {"tls|443|*.wild.example.com", "tls|443|www.wild.example.com", "tls|443|by_sni"},
		// Forwarding modes: every listed host has a chain, the rest is
		// forwarded by the unlisted chain.
		serviceentry.AllowAny: {"tls|443|*.wild.example.com", "tls|443|api.example.com", "tls|443|www.wild.example.com", "tls|443|unlisted"},
		serviceentry.Audit:    {"tls|443|*.wild.example.com", "tls|443|api.example.com", "tls|443|www.wild.example.com", "tls|443|unlisted"},
	} {
		t.Run(string(mode), func(t *testing.T) {
			g := plan(t, tlsHosts, Options{Outbound: mode})
			p := g.port(443)
			if got := chainNames(p); !slices.Equal(got, want) {
				t.Errorf("chains %q, want %q", got, want)
			}
			if g.cluster(vocab.PassthroughClusterName("api.example.com", 443)) == nil {
				t.Error("api.example.com has no passthrough cluster")
			}
			wild := p.Chains[0].Forward
			if wild.Cluster != DynamicTLSCluster || wild.ResolveSNIPort != 443 {
				t.Errorf("wildcard chain forwards %+v, want the SNI resolved on 443", wild)
			}
			last := p.Chains[len(p.Chains)-1].Forward
			switch mode {
			case serviceentry.RegistryOnly:
				if !last.ClusterBySNI || last.Logs[1].Reason != vocab.ReasonNotInRegistry {
					t.Errorf("by_sni chain %+v", last)
				}
			case serviceentry.Audit:
				if last.Logs[0].Verdict != vocab.VerdictAuditDeny || last.Logs[0].When != WhenSNI {
					t.Errorf("unlisted chain logs %+v, want audit-deny", last.Logs)
				}
			}
			if p.Default.Forward.Logs[0].Reason == "" || !p.InspectTLS {
				t.Errorf("port %+v", p)
			}
		})
	}
}

const httpHosts = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: exact, namespace: ns}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: ns}
spec:
  hosts: [direct.example.com]
  addresses: [10.1.2.0/24]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: ns}
spec:
  hosts: ["*.cdn.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP2}]
  resolution: NONE
`

// TestPlanRoutes: virtual hosts of an HTTP port and the address guard of
// each route.
func TestPlanRoutes(t *testing.T) {
	g := plan(t, httpHosts, Options{})
	r := g.port(80).Routes
	type vh struct {
		name    string
		kind    VirtualHostKind
		cluster string
		guard   RouteGuard
	}
	var got []vh
	for _, v := range r.VirtualHosts {
		got = append(got, vh{v.Name, v.Kind, v.Cluster, v.Guard})
	}
	want := []vh{
		{"*.cdn.example.com:80", VHostCluster, DynamicHTTP2Cluster, GuardDefault},
		{"direct.example.com:80", VHostCluster, DynamicHTTPCluster, GuardListed},
		{"by_host", VHostByHost, "", GuardOff},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("virtual hosts %+v, want %+v", got, want)
	}
	if !r.Dynamic || !r.ByHost {
		t.Errorf("routes dynamic %v by host %v", r.Dynamic, r.ByHost)
	}
	if allows := r.VirtualHosts[1].GuardAllows; !slices.Equal(allows, []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}) {
		t.Errorf("guard allows %v", allows)
	}
	if c := g.cluster(vocab.ClusterName("api.example.com", 80)); c == nil || c.Kind != ClusterStrictDNS || c.Endpoints[0].Address != "api.example.com." {
		t.Errorf("api.example.com's cluster %+v: want strict DNS of the absolute name", c)
	}
	http := g.port(80).Chains[0].HTTP
	if http == nil || !http.Dynamic || !http.ByHost || http.Routes != "http.80" {
		t.Errorf("HTTP chain %+v does not follow its route table", http)
	}
}

// TestPlanLeavesOutTheGateway: an endpoint on one of the gateway's own
// listeners, and original-destination ranges that are all the gateway's,
// are left out, each with a warning.
func TestPlanLeavesOutTheGateway(t *testing.T) {
	doc := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: loop, namespace: ns}
spec:
  hosts: [loop.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 198.18.0.1}, {address: 198.18.0.1, ports: {http: 9999}}, {address: 203.0.113.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: self, namespace: ns}
spec:
  hosts: [self.example.com]
  addresses: [198.18.0.1/32]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: NONE
`
	g := plan(t, doc, Options{Self: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32")}})
	c := g.cluster(vocab.ClusterName("loop.example.com", 80))
	want := []Endpoint{{Address: "198.18.0.1", Port: 9999}, {Address: "203.0.113.5", Port: 80}}
	if c == nil || !reflect.DeepEqual(c.Endpoints, want) {
		t.Errorf("endpoints %+v, want %+v (the one on listener port 80 left out)", c, want)
	}
	if names := chainNames(g.port(5432)); len(names) != 0 {
		t.Errorf("port 5432 chains %q: the self-only chain is kept", names)
	}
	if len(g.Warnings) != 2 || !strings.Contains(g.Warnings[0], "loop") || !strings.Contains(g.Warnings[1], "self") {
		t.Errorf("warnings %q", g.Warnings)
	}
}

func TestPlanRefusesHTTPBesideAWholePortTCPEntry(t *testing.T) {
	doc := `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp, namespace: ns}
spec:
  hosts: [db.example.com]
  ports: [{number: 80, name: tcp, protocol: TCP}]
  resolution: DNS
`
	g := plan(t, doc, Options{AlwaysHTTPPorts: []uint32{80}})
	if p := g.port(80); p.Routes != nil || p.Default == nil || p.Default.Name != "tcp|80|ns/tcp" {
		t.Errorf("port 80 %+v: the always-on HTTP port yields to the TCP entry", p)
	}
	if _, err := Plan(compile(t, doc), Options{Outbound: "SOMETIMES"}); err == nil {
		t.Error("an unknown outbound mode was accepted")
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	a := compile(t, tlsHosts+"---\n"+httpHosts)
	first, err := Plan(a, Options{MeshPort: 15443})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := Plan(a, Options{MeshPort: 15443})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(first, again) {
			t.Fatal("two plans of one allowlist differ")
		}
	}
}

// TestValidateRefuses: the model's rules, broken one at a time.
func TestValidateRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(g *Gateway)
		want string
	}{
		"unknown cluster":  {func(g *Gateway) { g.port(443).Default.Forward.Cluster = "nope" }, `cluster "nope" is not planned`},
		"chain twice":      {func(g *Gateway) { p := g.port(443); p.Chains = append(p.Chains, p.Chains[0]) }, "twice"},
		"bad chain name":   {func(g *Gateway) { g.port(443).Chains[0].Name = "tls-443" }, "not a chain name"},
		"catch-all first":  {func(g *Gateway) { r := g.port(80).Routes; slices.Reverse(r.VirtualHosts) }, "comes last"},
		"bad reason":       {func(g *Gateway) { g.port(443).Default.Forward.Logs[0].Reason = "because" }, "not vocab's"},
		"same listen port": {func(g *Gateway) { g.port(80).Listen = g.port(443).Listen }, "listens on port 443"},
		"http disagrees":   {func(g *Gateway) { g.port(80).Chains[0].HTTP.Dynamic = false }, "disagree"},
		"unverified TLS": {func(g *Gateway) {
			g.Clusters[len(g.Clusters)-1].TLS = &Origination{Mode: serviceentry.TLSSimple, SNI: "x"}
		}, "needs a CA secret"},
	} {
		t.Run(name, func(t *testing.T) {
			g := plan(t, tlsHosts+"---\n"+httpHosts, Options{})
			tc.edit(g)
			err := g.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRows(t *testing.T) {
	g := plan(t, tlsHosts+"---\n"+httpHosts, Options{MeshPort: 15443})
	rows := g.Rows()
	find := func(chain string) Row {
		for _, r := range rows {
			if r.Chain == chain {
				return r
			}
		}
		t.Fatalf("no row for %s in %+v", chain, rows)
		return Row{}
	}
	for chain, want := range map[string]Row{
		"tls|443|by_sni":             {Listener: "egress_443", Listen: 443, Match: "TLS", Action: "pass TLS through to the SNI's cluster (outbound|443|tls|<SNI>), else close"},
		"tls|443|*.wild.example.com": {Listener: "egress_443", Listen: 443, Match: "SNI *.wild.example.com", Action: "resolve the SNI, pass TLS through to it on port 443"},
		"tcp|443|unlisted":           {Listener: "egress_443", Listen: 443, Default: true, Match: "anything else", Action: "close: deny not_in_registry"},
		"http|80": {Listener: "egress_80", Listen: 80, Match: "any connection",
			Action: "HTTP by Host, route table http.80 (2 hosts of its own, the rest found by Host, else 403 not_in_registry); resolves the Host, address guard on"},
		"mesh|tls|443|api.example.com": {Listener: "egress_mesh", Listen: 15443, Match: "SNI outbound_.443_._.api.example.com, api.example.com",
			Action: "mesh mTLS, then AuthorizationPolicies for api.example.com, then pass TLS through to outbound|443|tls|api.example.com"},
		"mesh|unlisted": {Listener: "egress_mesh", Listen: 15443, Default: true, Match: "anything else", Action: "close: deny not_in_registry"},
	} {
		want.Chain = chain
		if got := find(chain); got != want {
			t.Errorf("row\n got %+v\nwant %+v", got, want)
		}
	}
	if n := len(rows); n != 1+4+4 { // egress_80: http; egress_443 and the mesh listener: 3 chains and the default
		t.Errorf("%d rows: %+v", n, rows)
	}
}

func TestUnderWildcard(t *testing.T) {
	wild := wildcardSet{".example.com": true, ".b.test": true}
	for name, want := range map[string]bool{
		"a.example.com": true, "x.y.example.com": true, "example.com": false, "a.b.test": true,
		"b.test": false, "aexample.com": false, "a.example.com.evil": false, "c.test": false,
	} {
		if got := underWildcard(hostPort{host: &serviceentry.Host{Name: name}}, wild); got != want {
			t.Errorf("underWildcard(%s) = %v, want %v", name, got, want)
		}
	}
	if underWildcard(hostPort{host: &serviceentry.Host{Name: "a.example.com"}}, wildcardSet{}) {
		t.Error("no wildcards, yet under one")
	}
}

const tcpHosts = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: ns}
spec:
  hosts: [db.example.com]
  addresses: [198.18.0.7, "2001:db8::7"]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range, namespace: ns}
spec:
  hosts: [pool.example.com]
  addresses: [198.18.5.0/24]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 198.18.5.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: ns}
spec:
  hosts: [legacy.example.com]
  addresses: [198.18.6.7]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: NONE
`

// TestPlanTCPByAddress: under REGISTRY_ONLY an entry whose addresses are
// single IPs gets a cluster per address and no chain, the port's default
// chain taking the cluster from the destination address; a range and an
// original-destination entry keep chains of their own; the forwarding
// modes keep a chain per entry.
func TestPlanTCPByAddress(t *testing.T) {
	g := plan(t, tcpHosts, Options{})
	p := g.port(5432)
	if got, want := chainNames(p), []string{"tcp|5432|ns/passthrough", "tcp|5432|ns/range"}; !slices.Equal(got, want) {
		t.Errorf("chains %q, want %q", got, want)
	}
	if p.Default == nil || p.Default.Name != "tcp|5432|by_address" || !p.Default.Forward.ClusterByAddress {
		t.Fatalf("default chain %+v, want the by-address chain", p.Default)
	}
	for _, ip := range []string{"198.18.0.7", "2001:db8::7"} {
		c := g.cluster(vocab.AddressClusterName(ip, 5432))
		if c == nil || c.ServiceEntry != "ns/db" {
			t.Errorf("address %s: cluster %+v, want one of ns/db", ip, c)
		}
	}
	if g.cluster(vocab.ClusterName("db.example.com", 5432)) != nil {
		t.Error("the by-address entry also has a cluster named after its host")
	}
	if err := g.Validate(); err != nil {
		t.Error(err)
	}
	forwarding := plan(t, tcpHosts, Options{Outbound: serviceentry.AllowAny}).port(5432)
	if got := chainNames(forwarding); !slices.Contains(got, "tcp|5432|ns/db") || forwarding.Default.Forward.ClusterByAddress {
		t.Errorf("ALLOW_ANY: chains %q, default %+v: want a chain per entry", got, forwarding.Default)
	}
}
