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

// ListenerName is the gateway listener of one service port.
func ListenerName(port uint32) string { return fmt.Sprintf("egress_%d", port) }

// RouteName is the HTTP route configuration of one service port.
func RouteName(port uint32) string { return fmt.Sprintf("http.%d", port) }
