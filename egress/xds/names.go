package xds

import "fmt"

// Fixed resource names. Per-host names follow Istio's cluster naming
// ("outbound|<port>||<host>") so operators recognise them in Envoy's admin.
const (
	// BlackholeCluster has no endpoints: deny chains proxy to it, so a
	// denied connection is closed at once and still access-logged.
	BlackholeCluster = "egressd_blackhole"
	// DynamicHTTPCluster resolves the Host of HTTP requests at the gateway
	// (wildcard hosts, resolution NONE, ALLOW_ANY).
	DynamicHTTPCluster = "egressd_dynamic_http"
	// DynamicTLSCluster resolves the SNI of TLS connections at the gateway.
	DynamicTLSCluster = "egressd_dynamic_tls"
	// OriginalDstCluster connects to the connection's original destination
	// (TCP entries with resolution NONE and addresses).
	OriginalDstCluster = "egressd_original_dst"
	// DNSCacheName names the one DNS cache shared by the dynamic clusters.
	DNSCacheName = "egressd_dns"
)

// ClusterName is the cluster of one host and service port.
func ClusterName(host string, port uint32) string {
	return fmt.Sprintf("outbound|%d||%s", port, host)
}

// PassthroughClusterName is the cluster of one host whose TLS the gateway
// passes through unterminated on a service port. Under REGISTRY_ONLY the
// gateway finds it from the connection's SNI, so its name differs from
// ClusterName's: an SNI can only ever select a passthrough cluster of the
// port it arrived on, never an HTTP, TCP or origination cluster.
func PassthroughClusterName(host string, port uint32) string {
	return fmt.Sprintf("outbound|%d|tls|%s", port, host)
}

// SNIChainName is the filter chain of a TLS port that passes listed hosts
// through by SNI under REGISTRY_ONLY, and closes the rest.
func SNIChainName(port uint32) string { return fmt.Sprintf("tls|%d|by_sni", port) }

// ListenerName is the gateway listener of one service port.
func ListenerName(port uint32) string { return fmt.Sprintf("egress_%d", port) }

// RouteName is the HTTP route configuration of one service port.
func RouteName(port uint32) string { return fmt.Sprintf("http.%d", port) }
