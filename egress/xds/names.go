package xds

import "github.com/egressd/egressd/egress/gateway"

// Fixed resource names (the gateway model's). The names of per-host
// clusters, listeners, routes and filter chains are vocab's (vocab.Cluster,
// vocab.Chain, vocab.ListenerName, vocab.RouteName): the access logs carry
// them and the intake parses them.
const (
	// BlackholeCluster has no endpoints: deny chains proxy to it, so a
	// denied connection is closed at once and still access-logged.
	BlackholeCluster = gateway.BlackholeCluster
	// DynamicHTTPCluster resolves the Host of HTTP requests at the gateway
	// (wildcard hosts, resolution NONE, ALLOW_ANY).
	DynamicHTTPCluster = gateway.DynamicHTTPCluster
	// DynamicTLSCluster resolves the SNI of TLS connections at the gateway.
	DynamicTLSCluster = gateway.DynamicTLSCluster
	// OriginalDstCluster connects to the connection's original destination
	// (TCP entries with resolution NONE and addresses).
	OriginalDstCluster = gateway.OriginalDstCluster
	// DNSCacheName names the one DNS cache shared by the dynamic clusters.
	DNSCacheName = "egressd_dns"
)
