// Package xds is the gateway stage of egressd's pipeline: it spells the
// gateway model (package gateway) out as Envoy resources (listeners,
// routes, clusters) and serves them to the Envoy egress gateway over ADS.
//
//	*serviceentry.Allowlist -> gateway.Plan -> *gateway.Gateway -> build -> Resources -> Server (snapshot cache) -> ADS -> Envoy
//
// Translate is both steps and is pure: no I/O, deterministic output
// (sorted, stable names), so equal allowlists give byte-identical
// resources. The builders take no decision of their own, one file per
// resource: listeners.go (listeners, filter chains, network filters),
// hcm.go (the one HTTP connection manager builder and its filter order),
// routes.go, cluster.go, origination.go (upstream TLS), accesslog.go,
// guard.go (the address guard's RBAC). memo.go reuses what an unchanged
// part of the model was built into at the last publish. ondemand.go serves
// the listed hosts' clusters on demand (a delta CDS stream of its own,
// with absent clusters for names that are none), so a gateway holds the
// clusters of the hosts in use. The gateway it
// describes denies by default: HTTP by Host header, TLS by SNI
// (passthrough), TCP by destination address and port; everything else is
// refused and logged.
package xds
