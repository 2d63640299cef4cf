package vocab

import (
	"fmt"
	"strconv"
	"strings"
)

// Cluster names the gateway cluster of one host on one service port, in
// Istio's form so operators recognise them in Envoy's admin:
// "outbound|<port>||<host>", "outbound|<port>|tls|<host>" for a host
// whose TLS the gateway passes through, or "outbound|<port>|addr|<ip>"
// for a TCP entry's address (Host is then the IP). The forms differ so
// that, where the gateway picks the cluster from the SNI or the
// destination address, an SNI can only ever select a passthrough cluster
// and an address an address cluster of its own port.
type Cluster struct {
	Port        uint32
	Passthrough bool
	Address     bool
	Host        string
}

// String is the cluster's name.
func (c Cluster) String() string {
	subset := ""
	switch {
	case c.Passthrough:
		subset = "tls"
	case c.Address:
		subset = "addr"
	}
	return fmt.Sprintf("outbound|%d|%s|%s", c.Port, subset, c.Host)
}

// ParseCluster reads a name Cluster.String wrote.
func ParseCluster(s string) (Cluster, bool) {
	parts := strings.SplitN(s, "|", 4)
	if len(parts) != 4 || parts[0] != "outbound" || (parts[2] != "" && parts[2] != "tls" && parts[2] != "addr") || parts[3] == "" {
		return Cluster{}, false
	}
	port, ok := parsePort(parts[1])
	if !ok {
		return Cluster{}, false
	}
	return Cluster{Port: port, Passthrough: parts[2] == "tls", Address: parts[2] == "addr", Host: parts[3]}, true
}

// AddressClusterName is the cluster of a TCP entry's address (an IP) on a
// service port.
func AddressClusterName(ip string, port uint32) string {
	return Cluster{Port: port, Address: true, Host: ip}.String()
}

// ClusterName is the cluster of host on a service port.
func ClusterName(host string, port uint32) string { return Cluster{Port: port, Host: host}.String() }

// PassthroughClusterName is the cluster of host whose TLS the gateway
// passes through on a service port.
func PassthroughClusterName(host string, port uint32) string {
	return Cluster{Port: port, Passthrough: true, Host: host}.String()
}

// ChainKind is what a gateway filter chain serves.
type ChainKind string

// Filter chain kinds.
const (
	ChainTLS          ChainKind = "tls"           // TLS passed through: one host, by_sni, or unlisted
	ChainTCP          ChainKind = "tcp"           // plaintext TCP: one entry's addresses, or unlisted
	ChainHTTP         ChainKind = "http"          // plaintext HTTP of a port
	ChainMeshHTTP     ChainKind = "mesh|http"     // HTTP inside mesh mutual TLS
	ChainMeshTLS      ChainKind = "mesh|tls"      // TLS inside mesh mutual TLS, one host
	ChainMeshUnlisted ChainKind = "mesh|unlisted" // mesh connections for no allowed name
)

// Targets of chains that serve no one host or entry.
const (
	TargetUnlisted = "unlisted" // what no entry allows
	TargetBySNI    = "by_sni"   // every listed host, the SNI naming the cluster
	// TargetByAddress: every TCP entry's single addresses, the destination
	// address naming the cluster.
	TargetByAddress = "by_address"
)

// Chain names a gateway filter chain: "<kind>|<port>[|<target>]", with
// "mesh|unlisted" alone. The access logs carry the name, and the intake
// reads the entry of a TCP chain from it. Target is a host (TLS chains),
// "namespace/name" of a ServiceEntry (TCP chains), TargetUnlisted or
// TargetBySNI; empty for HTTP chains.
type Chain struct {
	Kind   ChainKind
	Port   uint32
	Target string
}

// String is the chain's name.
func (c Chain) String() string {
	switch {
	case c.Kind == ChainMeshUnlisted:
		return string(c.Kind)
	case c.Target == "":
		return fmt.Sprintf("%s|%d", c.Kind, c.Port)
	}
	return fmt.Sprintf("%s|%d|%s", c.Kind, c.Port, c.Target)
}

// ParseChain reads a name Chain.String wrote.
func ParseChain(s string) (Chain, bool) {
	if s == string(ChainMeshUnlisted) {
		return Chain{Kind: ChainMeshUnlisted}, true
	}
	kind, rest := ChainKind(""), ""
	for _, k := range []ChainKind{ChainMeshHTTP, ChainMeshTLS, ChainTLS, ChainTCP, ChainHTTP} {
		if r, ok := strings.CutPrefix(s, string(k)+"|"); ok {
			kind, rest = k, r
			break
		}
	}
	if kind == "" {
		return Chain{}, false
	}
	portStr, target, hasTarget := strings.Cut(rest, "|")
	port, ok := parsePort(portStr)
	if !ok {
		return Chain{}, false
	}
	switch kind {
	case ChainHTTP, ChainMeshHTTP:
		if hasTarget {
			return Chain{}, false
		}
	default:
		if !hasTarget || target == "" {
			return Chain{}, false
		}
	}
	return Chain{Kind: kind, Port: port, Target: target}, true
}

// Entry is the ServiceEntry ("namespace/name") a TCP chain serves, or "".
func (c Chain) Entry() string {
	if c.Kind != ChainTCP || c.Target == TargetUnlisted || c.Target == TargetByAddress {
		return ""
	}
	return c.Target
}

// ListenerName is the gateway listener of one service port.
func ListenerName(port uint32) string { return fmt.Sprintf("egress_%d", port) }

// MeshListenerName is the mesh listener's name.
const MeshListenerName = "egress_mesh"

// RouteName is the HTTP route configuration of one service port.
func RouteName(port uint32) string { return fmt.Sprintf("http.%d", port) }

func parsePort(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || s != strconv.FormatUint(n, 10) {
		return 0, false
	}
	return uint32(n), true
}
