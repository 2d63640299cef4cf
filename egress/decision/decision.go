// Package decision is egressd's one decision stream: every allow, deny and
// audit-deny made anywhere (DNS proxy, gateway listeners, redirect tracking)
// becomes one Decision, published on a Stream and fanned out to consumers
// (the log line, the metrics, the in-memory Store behind the CLI and the
// dashboard). A slow consumer never blocks publishers; what it misses is
// counted, never dropped silently.
package decision

import (
	"net/netip"
	"time"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// Decision is one decision event: the contract between the data plane and
// everything that reports. A published Decision is immutable: consumers
// share it and must not modify it.
type Decision struct {
	// ID is assigned by the Stream, increasing from 1 in publish order.
	ID uint64 `json:"id"`
	// Time is when the query, connection or request started.
	Time time.Time `json:"time"`
	// Layer is one of the Layer* constants.
	Layer vocab.Layer `json:"layer"`
	// Verdict is one of the Verdict* constants.
	Verdict vocab.Verdict `json:"verdict"`
	// Reason is one of the Reason* constants.
	Reason vocab.Reason `json:"reason"`
	// Source is the client's address as the deciding component saw it.
	Source netip.AddrPort `json:"source"`
	// Identity is the caller's SPIFFE ID or "namespace/serviceaccount"
	// when known, empty otherwise.
	Identity string `json:"identity,omitempty"`
	// Host is the requested name: the DNS query name, the TLS SNI or the
	// HTTP Host without its port; empty for plaintext TCP without one.
	Host string `json:"host,omitempty"`
	// Port is the service port (the port clients asked for); 0 for DNS.
	Port uint32 `json:"port,omitempty"`
	// Protocol is "DNS/A", "HTTP/1.1", "HTTP/2", "TLS" or "TCP".
	Protocol string `json:"protocol,omitempty"`
	// Destination is the address the client connected to, when it says
	// more than Host and Port (TCP by address).
	Destination string `json:"destination,omitempty"`
	// Upstream is the upstream address the gateway used, when it got one.
	Upstream string `json:"upstream,omitempty"`
	// ServiceEntry is "namespace/name" of the ServiceEntry that matched.
	ServiceEntry string `json:"serviceentry,omitempty"`
	// Via is "proxy" for a request to the explicit proxy listener (a
	// CONNECT, whose target is Host and Port, or an absolute URI).
	Via string `json:"via,omitempty"`
	// Method, Path and Status describe an HTTP request.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Status int    `json:"status,omitempty"`
	// Location is the Location header of a 3xx response.
	Location string `json:"location,omitempty"`
	// Flags are Envoy's response flags ("UF", "NR", ...), comma-separated.
	Flags string `json:"response_flags,omitempty"`
	// Detail says more in words: the CNAME chain, the blocked addresses,
	// the upstream's TLS error.
	Detail string `json:"detail,omitempty"`
	// Chain links the hops of one HTTP redirect chain; nil outside one.
	Chain *Chain `json:"chain,omitempty"`
	// Gateway is the SPIFFE ID of the gateway that reported the decision
	// (authenticated by its xDS client certificate), and GatewayNode the
	// node id it gave; empty for the DNS proxy's decisions.
	Gateway     string `json:"gateway,omitempty"`
	GatewayNode string `json:"gateway_node,omitempty"`
	// Count, when not 0, makes the decision a summary: the gateway counted
	// Count allowed requests to Host and Port in the window ending at Time
	// rather than reporting each (see the gateway's access logs), with the
	// bytes they carried. Source, Method, Path and Status are then empty.
	Count         uint64 `json:"count,omitempty"`
	BytesReceived uint64 `json:"bytes_received,omitempty"`
	BytesSent     uint64 `json:"bytes_sent,omitempty"`
}

// Requests is how many requests, connections or queries the decision
// stands for: Count for a summary, else 1.
func (d *Decision) Requests() uint64 {
	if d.Count > 0 {
		return d.Count
	}
	return 1
}

// Chain places a decision in a redirect chain.
type Chain struct {
	// ID identifies the chain; every hop of one chain has the same ID.
	ID string `json:"id"`
	// Hop is this decision's index in the chain, from 0.
	Hop int `json:"hop"`
	// Hops are the chain's hops up to and including this one.
	Hops []Hop `json:"hops"`
}

// Hop is one step of a redirect chain.
type Hop struct {
	// URL is the hop's URL ("http://a.example/x").
	URL string `json:"url"`
	// Host is the URL's host, without the port.
	Host string `json:"host"`
	// Status is the hop's HTTP status, 0 while the hop was not requested
	// (a Location the client has not followed yet).
	Status int `json:"status,omitempty"`
	// Verdict and Reason are the hop's decision.
	Verdict vocab.Verdict `json:"verdict"`
	Reason  vocab.Reason  `json:"reason"`
}

// Denied reports whether the decision refused traffic, or would have
// under REGISTRY_ONLY (audit-deny).
func (d *Decision) Denied() bool {
	return d.Verdict == vocab.VerdictDeny || d.Verdict == vocab.VerdictAuditDeny
}
