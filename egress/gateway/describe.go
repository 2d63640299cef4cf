package gateway

import (
	"fmt"
	"strings"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Row is one filter chain of the gateway in words, for people: the
// dashboard's gateway table and egressctl gateway.
type Row struct {
	// Listener and Listen: the listener's name and the port it binds.
	Listener string `json:"listener"`
	Listen   uint32 `json:"listen"`
	Chain    string `json:"chain"`
	// Default: the listener's default chain (what no other matches).
	Default bool   `json:"default,omitempty"`
	Match   string `json:"match"`
	Action  string `json:"action"`
}

// Rows describes every filter chain of g, listener by listener, in the
// order Envoy tries them.
func (g *Gateway) Rows() []Row {
	var out []Row
	add := func(listener string, listen uint32, chains []*Chain, def *Chain, routes map[string]*Routes) {
		for _, c := range chains {
			out = append(out, Row{Listener: listener, Listen: listen, Chain: c.Name, Match: c.Match.describe(), Action: c.describe(routes)})
		}
		if def != nil {
			out = append(out, Row{Listener: listener, Listen: listen, Chain: def.Name, Default: true, Match: "anything else", Action: def.describe(routes)})
		}
	}
	routes := map[string]*Routes{}
	for _, p := range g.Ports {
		if p.Routes != nil {
			routes[p.Routes.Name] = p.Routes
		}
	}
	for _, p := range g.Ports {
		add(vocab.ListenerName(p.Number), p.Listen, p.Chains, p.Default, routes)
	}
	if m := g.Mesh; m != nil {
		add(vocab.MeshListenerName, m.Listen, m.Chains, m.Default, routes)
	}
	return out
}

func (m Match) describe() string {
	var parts []string
	switch {
	case len(m.ServerNames) > 3:
		parts = append(parts, fmt.Sprintf("SNI %s and %d more", strings.Join(m.ServerNames[:3], ", "), len(m.ServerNames)-3))
	case len(m.ServerNames) > 0:
		parts = append(parts, "SNI "+strings.Join(m.ServerNames, ", "))
	case m.Transport == TransportTLS:
		parts = append(parts, "TLS")
	case m.Transport == TransportPlaintext:
		parts = append(parts, "plaintext")
	}
	if len(m.Destinations) > 0 {
		d := make([]string, len(m.Destinations))
		for i, p := range m.Destinations {
			d[i] = p.String()
		}
		parts = append(parts, "to "+strings.Join(d, ", "))
	}
	if len(parts) == 0 {
		return "any connection"
	}
	return strings.Join(parts, ", ")
}

func (c *Chain) describe(routes map[string]*Routes) string {
	var s string
	if h := c.HTTP; h != nil {
		s = "HTTP by Host, route table " + h.Routes
		if r := routes[h.Routes]; r != nil {
			own := len(r.VirtualHosts) - 1
			s += fmt.Sprintf(" (%d host%s of its own", own, plural(own))
			if r.ByHost {
				s += ", the rest found by Host, else 403 not_in_registry)"
			} else {
				s += ", the rest forwarded)"
			}
		}
		if h.Dynamic {
			s += "; resolves the Host, address guard on"
		}
	} else {
		f := c.Forward
		switch {
		case f.ClusterByAddress:
			s = fmt.Sprintf("forward to the destination address's cluster (%s), else close", vocab.AddressClusterName("<address>", c.Port))
		case f.Cluster == BlackholeCluster && !f.ClusterBySNI:
			s = fmt.Sprintf("close: %s %s", f.Logs[0].Verdict, f.Logs[0].Reason)
		case f.ClusterBySNI:
			s = fmt.Sprintf("pass TLS through to the SNI's cluster (%s), else close", vocab.PassthroughClusterName("<SNI>", c.Port))
		case f.ResolveSNIPort != 0:
			s = fmt.Sprintf("resolve the SNI, pass TLS through to it on port %d", f.ResolveSNIPort)
		case strings.HasPrefix(c.Name, string(vocab.ChainTLS)+"|") || strings.HasPrefix(c.Name, string(vocab.ChainMeshTLS)+"|"):
			s = "pass TLS through to " + f.Cluster
		default:
			s = "forward to " + f.Cluster
		}
		if f.AuthorizeHost != "" {
			s = "AuthorizationPolicies for " + f.AuthorizeHost + ", then " + s
		}
	}
	if c.MeshTLS {
		s = "mesh mTLS, then " + s
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
