package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Proxy is the explicit proxy listener, for clients that honour
// HTTPS_PROXY and HTTP_PROXY: a CONNECT to host:port opens a tunnel to that
// host's cluster on that port (a listed host port only; anything else is
// answered 403 not_in_registry), and an absolute-URI request
// ("GET http://host/path") is routed as on the HTTP port HTTPPort, whose
// virtual hosts the proxy's route table shares.
type Proxy struct {
	// Number is the proxy's service port; Listen the port it binds.
	Number uint32 `json:"number"`
	Listen uint32 `json:"listen"`
	// Routes names the proxy's route table.
	Routes string `json:"routes"`
	// HTTP is the route table absolute URIs take (nil: none; then only
	// CONNECT is served).
	HTTP *Routes `json:"http,omitempty"`
	// Connect are the CONNECT targets, sorted by authority: every listed
	// host port with a cluster of its own (TLS passthrough, and HTTP or
	// TCP hosts by name off port 80, whose clients send absolute URIs).
	Connect []ConnectTarget `json:"connect,omitempty"`
}

// ConnectTarget is one "host:port" a CONNECT may open, and its cluster.
type ConnectTarget struct {
	Authority string `json:"authority"`
	Cluster   string `json:"cluster"`
}

// ProxyRoutes is the route table name of the proxy listener.
const ProxyRoutes = "proxy"

// proxy plans the proxy listener on service port number, its absolute
// URIs routed as on port 80; nil with a warning when a listener already
// serves that port.
func (p *planner) proxy(g *Gateway, number uint32) *Proxy {
	listen := number + p.o.PortOffset
	for _, port := range g.Ports {
		if port.Listen == listen {
			p.warnings = append(p.warnings, fmt.Sprintf("proxy listener: port %d is also port %d's listener; the proxy is off", listen, port.Number))
			return nil
		}
	}
	if g.Mesh != nil && g.Mesh.Listen == listen {
		p.warnings = append(p.warnings, fmt.Sprintf("proxy listener: port %d is also the mesh listener's; the proxy is off", listen))
		return nil
	}
	px := &Proxy{Number: number, Listen: listen, Routes: ProxyRoutes}
	for _, port := range g.Ports {
		if port.Number == 80 && port.Routes != nil {
			px.HTTP = port.Routes
		}
	}
	taken := map[string]bool{}
	if px.HTTP != nil {
		for _, vh := range px.HTTP.VirtualHosts {
			for _, d := range vh.Domains {
				taken[d] = true
			}
		}
	}
	for _, c := range g.Clusters { // sorted by name
		n, ok := vocab.ParseCluster(c.Name)
		if !ok || n.Address || strings.HasPrefix(n.Host, "*") || c.Kind == ClusterBlackhole || n.Port == 80 && !n.Passthrough {
			continue
		}
		authority := fmt.Sprintf("%s:%d", n.Host, n.Port)
		if taken[authority] {
			continue
		}
		taken[authority] = true
		px.Connect = append(px.Connect, ConnectTarget{Authority: authority, Cluster: c.Name})
	}
	slices.SortFunc(px.Connect, func(a, b ConnectTarget) int { return strings.Compare(a.Authority, b.Authority) })
	return px
}

// ProxyStatPrefix is the proxy connection manager's stats prefix.
func ProxyStatPrefix(number uint32) string { return fmt.Sprintf("egress_proxy_%d", number) }
