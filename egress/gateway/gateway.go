// Package gateway is the model of the egress gateway between the allowlist
// and Envoy's resources: what each port listens for, which filter chain
// takes which connection and what it does with it, which virtual hosts a
// port's route table has and which clusters exist.
//
//	*serviceentry.Allowlist -> Plan -> *Gateway -> xds builders -> Envoy resources
//
// Every routing decision is taken in Plan, once: whether a host gets a
// chain or virtual host of its own or is found by SNI or Host, whether the
// gateway forwards dynamically, what a refused connection is logged as.
// The xds package only spells the model out as protos. The model is plain
// data (JSON and YAML tags), deterministic, and what operators are shown
// (the dashboard's allowlist view, egressctl gateway).
package gateway

import (
	"net/netip"
	"time"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// Gateway is the whole gateway configuration for one allowlist.
type Gateway struct {
	// Allowlist is the version of the allowlist planned.
	Allowlist string `json:"allowlist"`
	// Outbound is what happens to destinations no entry lists.
	Outbound serviceentry.OutboundMode `json:"outbound"`
	// Ports are the gateway listeners, one per service port, by number.
	Ports []*Port `json:"ports"`
	// Mesh is the mesh listener (mutual TLS from mesh callers), if on.
	Mesh *Mesh `json:"mesh,omitempty"`
	// Proxy is the explicit proxy listener (HTTPS_PROXY clients), if on.
	Proxy *Proxy `json:"proxy,omitempty"`
	// Clusters are every upstream the chains and routes name, by name.
	Clusters []*Cluster `json:"clusters"`
	// Warnings say what was left out (an endpoint on one of the
	// gateway's own listeners, say), in words, sorted.
	Warnings []string `json:"warnings,omitempty"`
	// NotApplied are the AuthorizationPolicies and PeerAuthentications
	// written for other workloads (Options.Scope), with the reason: they
	// do not act at the gateway. Not errors.
	NotApplied []serviceentry.NotApplied `json:"notApplied,omitempty"`
}

// Port is the listener of one service port.
type Port struct {
	// Number is the service port; Listen the port the listener binds
	// (Number plus the port offset).
	Number uint32 `json:"number"`
	Listen uint32 `json:"listen"`
	// InspectTLS reads the ClientHello (SNI, transport) before a chain
	// is chosen.
	InspectTLS bool `json:"inspectTLS,omitempty"`
	// OriginalDestination restores the destination of redirected
	// connections, so chains can match it.
	OriginalDestination bool `json:"originalDestination,omitempty"`
	// BoundedInspection gives up waiting for a ClientHello after a
	// second: a plaintext client of a server-first protocol sends
	// nothing, and must still reach the port's TCP chains.
	BoundedInspection bool `json:"boundedInspection,omitempty"`
	// Chains are tried in order; Default takes what none matches (nil:
	// nothing more, Envoy closes the connection).
	Chains  []*Chain `json:"chains,omitempty"`
	Default *Chain   `json:"default,omitempty"`
	// Routes is the port's HTTP route table, when it serves HTTP.
	Routes *Routes `json:"routes,omitempty"`
}

// Chain is one filter chain: what it matches, and either a TCP proxy
// (Forward) or an HTTP connection manager (HTTP).
type Chain struct {
	// Name is a vocab.Chain name; the access logs carry it.
	Name string `json:"name"`
	// Port is the service port the chain serves (its access logs say
	// so): the listener's, or on the mesh listener the host's.
	Port  uint32 `json:"port"`
	Match Match  `json:"match,omitzero"`
	// MeshTLS terminates the caller's mesh mutual TLS (mesh listener).
	MeshTLS bool     `json:"meshTLS,omitempty"`
	Forward *Forward `json:"forward,omitempty"`
	HTTP    *HTTP    `json:"http,omitempty"`
}

// Match is what a chain takes: every field set must hold.
type Match struct {
	ServerNames []string `json:"serverNames,omitempty"`
	// Transport is "tls", "raw_buffer" (plaintext) or "" (either).
	Transport string `json:"transport,omitempty"`
	// Destinations are the original destination addresses taken.
	Destinations []netip.Prefix `json:"destinations,omitempty"`
}

// Transports of Match.
const (
	TransportTLS       = "tls"
	TransportPlaintext = "raw_buffer"
)

// Forward proxies a connection to one cluster, unterminated.
type Forward struct {
	// Cluster is the upstream. With ClusterBySNI it is only the fallback
	// should the SNI's cluster not be set.
	Cluster string `json:"cluster"`
	// ClusterBySNI takes the cluster the SNI names on this port
	// (vocab.PassthroughClusterName(SNI, port)); an SNI no cluster has
	// is refused.
	ClusterBySNI bool `json:"clusterBySNI,omitempty"`
	// ClusterByAddress takes the cluster the destination address names on
	// this port (vocab.AddressClusterName(address, port)); an address no
	// cluster has is refused.
	ClusterByAddress bool `json:"clusterByAddress,omitempty"`
	// ResolveSNIPort, when not 0, resolves the SNI (as an absolute name,
	// through the gateway resolver) and connects to it on that port.
	ResolveSNIPort uint32 `json:"resolveSNIPort,omitempty"`
	// AuthorizeHost applies the mesh listener's AuthorizationPolicies
	// for that host before proxying (mesh TLS chains).
	AuthorizeHost string `json:"authorizeHost,omitempty"`
	// Logs are the chain's access log lines, each for the connections
	// its condition selects.
	Logs []Log `json:"logs"`
}

// Log is one access log line of a TCP or TLS chain.
type Log struct {
	Layer   vocab.Layer   `json:"layer"`
	Verdict vocab.Verdict `json:"verdict"`
	Reason  vocab.Reason  `json:"reason"`
	// ServiceEntry names the entry ("namespace/name"); empty with
	// ServiceEntryFromCluster, when the cluster chosen names it.
	ServiceEntry            string `json:"serviceEntry,omitempty"`
	ServiceEntryFromCluster bool   `json:"serviceEntryFromCluster,omitempty"`
	// When selects the connections logged this way ("": all).
	When LogWhen `json:"when,omitempty"`
	// Mesh marks the mesh listener's lines: a caller without a
	// certificate there is unauthenticated.
	Mesh bool `json:"mesh,omitempty"`
}

// LogWhen is the condition of a Log.
type LogWhen string

// Log conditions.
const (
	WhenAlways        LogWhen = ""
	WhenSNI           LogWhen = "sni"            // the connection sent an SNI
	WhenNoSNI         LogWhen = "no_sni"         // it sent none
	WhenClusterFound  LogWhen = "cluster_found"  // an SNI whose cluster exists
	WhenClusterAbsent LogWhen = "cluster_absent" // an SNI whose cluster does not
	// The destination address's cluster exists, or does not.
	WhenAddressFound  LogWhen = "address_found"
	WhenAddressAbsent LogWhen = "address_absent"
)

// HTTP is an HTTP connection manager over a port's route table.
type HTTP struct {
	// Routes names the route table (the chain's port's Routes).
	Routes     string `json:"routes"`
	StatPrefix string `json:"statPrefix"`
	// Mesh: on the mesh listener; the mesh's AuthorizationPolicies
	// apply before any routing.
	Mesh bool `json:"mesh,omitempty"`
	// Dynamic: some of the route table's routes forward dynamically, so
	// the manager resolves the Host and checks the address (the guard).
	Dynamic bool `json:"dynamic,omitempty"`
	// ByHost: the route table finds listed hosts by Host; a Host that
	// names no cluster is answered 403 not_in_registry.
	ByHost bool `json:"byHost,omitempty"`
}

// Routes is a port's HTTP route table.
type Routes struct {
	Name string `json:"name"`
	Port uint32 `json:"port"`
	// Dynamic and ByHost: see HTTP.
	Dynamic bool `json:"dynamic,omitempty"`
	ByHost  bool `json:"byHost,omitempty"`
	// VirtualHosts in order; the last is the catch-all (Domains "*").
	VirtualHosts []*VirtualHost `json:"virtualHosts"`
}

// VirtualHostKind is what a virtual host does with a request.
type VirtualHostKind string

// Virtual host kinds.
const (
	// VHostCluster routes to Cluster.
	VHostCluster VirtualHostKind = "cluster"
	// VHostBlocked answers 502: a DestinationRule asks for TLS
	// origination the gateway cannot do.
	VHostBlocked VirtualHostKind = "blocked"
	// VHostByHost (catch-all, REGISTRY_ONLY) routes to the cluster the
	// Host names on the port, vocab.ClusterName(Host, port).
	VHostByHost VirtualHostKind = "by_host"
	// VHostUnlisted (catch-all, ALLOW_ANY and AUDIT) forwards to the
	// Host dynamically.
	VHostUnlisted VirtualHostKind = "unlisted"
)

// VirtualHost is one virtual host of a route table, with its one route.
type VirtualHost struct {
	Name    string          `json:"name"`
	Domains []string        `json:"domains"`
	Kind    VirtualHostKind `json:"kind"`
	// Route is the route's name.
	Route   string        `json:"route"`
	Cluster string        `json:"cluster,omitempty"`
	Verdict vocab.Verdict `json:"verdict"`
	Reason  vocab.Reason  `json:"reason"`
	// ServiceEntry names the entry in the route's metadata; empty when
	// the cluster's metadata does.
	ServiceEntry string `json:"serviceEntry,omitempty"`
	// Guard is the address guard of the route, on a Dynamic table.
	Guard RouteGuard `json:"guard,omitempty"`
	// GuardAllows are addresses the entry lists, which the guard lets
	// through for this route (Guard == GuardListed).
	GuardAllows []netip.Prefix `json:"guardAllows,omitempty"`
	// Host is the host a virtual host of its own serves.
	Host string `json:"host,omitempty"`
	// Blocked says why (VHostBlocked).
	Blocked *Blocked `json:"blocked,omitempty"`
	// VirtualService names the VirtualService whose route sends the host
	// to Cluster (another host or port), if one does; Timeout (0: none)
	// and Retries are that route's.
	VirtualService string                `json:"virtualService,omitempty"`
	Timeout        time.Duration         `json:"timeout,omitempty"`
	Retries        *serviceentry.Retries `json:"retries,omitempty"`
}

// RouteGuard is how the address guard treats a route.
type RouteGuard string

// Route guards.
const (
	// GuardDefault: the listener's guard applies (a dynamic route, or a
	// table that resolves nothing).
	GuardDefault RouteGuard = ""
	// GuardOff: the route resolves nothing itself (its cluster's
	// endpoints were checked when planned, or it answers locally).
	GuardOff RouteGuard = "off"
	// GuardListed: the guard also allows GuardAllows.
	GuardListed RouteGuard = "listed"
)

// Blocked is why a virtual host answers 502.
type Blocked struct {
	Rule        string `json:"rule"`
	Unsupported string `json:"unsupported"`
}

// Mesh is the mesh listener: mesh callers' mutual TLS is terminated, the
// inner traffic treated as its host's port says.
type Mesh struct {
	Port   uint32                `json:"port"`
	Listen uint32                `json:"listen"`
	Mode   serviceentry.MTLSMode `json:"mode"`
	// Policies are the AuthorizationPolicies in force, with those that
	// carry each ServiceEntry's exportTo.
	Policies []*serviceentry.AuthorizationPolicy `json:"policies,omitempty"`
	Chains   []*Chain                            `json:"chains,omitempty"`
	Default  *Chain                              `json:"default"`
}

// ClusterKind is how a cluster finds its endpoints.
type ClusterKind string

// Cluster kinds.
const (
	ClusterStatic      ClusterKind = "static"       // Endpoints are addresses
	ClusterStrictDNS   ClusterKind = "strict_dns"   // every address of the names
	ClusterLogicalDNS  ClusterKind = "logical_dns"  // one address at a time
	ClusterDynamic     ClusterKind = "dynamic"      // the Host or SNI, per request
	ClusterOriginalDst ClusterKind = "original_dst" // the connection's own destination
	ClusterBlackhole   ClusterKind = "blackhole"    // nothing: refused at once
)

// Cluster is one upstream.
type Cluster struct {
	Name string      `json:"name"`
	Kind ClusterKind `json:"kind"`
	// Endpoints: names are absolute (a trailing dot), so the gateway
	// resolver is asked for exactly them.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	HTTP2     bool       `json:"http2,omitempty"`
	// ServiceEntry names the entry, in the cluster's metadata (routes
	// and chains that find the cluster by Host or SNI read it there).
	ServiceEntry string `json:"serviceEntry,omitempty"`
	// TLS originates TLS to the endpoints.
	TLS *Origination `json:"tls,omitempty"`
}

// Endpoint is one upstream address.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Weight  uint32 `json:"weight,omitempty"`
}

// Origination is the TLS the gateway opens to an upstream.
type Origination struct {
	// Rule is the DestinationRule that asks for it.
	Rule string               `json:"rule"`
	SNI  string               `json:"sni,omitempty"`
	Mode serviceentry.TLSMode `json:"mode"`
	ALPN []string             `json:"alpn,omitempty"`
	// ClientSecret is the SDS secret of the client certificate (MUTUAL).
	ClientSecret string `json:"clientSecret,omitempty"`
	// CASecret is the SDS secret of the CAs the upstream's certificate
	// must chain to, unless InsecureSkipVerify (the DestinationRule's
	// insecureSkipVerify) says the certificate is not verified.
	CASecret           string `json:"caSecret,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
	// SubjectAltNames the upstream's certificate must carry one of.
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
}
