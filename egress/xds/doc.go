// Package xds is the gateway stage of egressd's pipeline: it translates one
// compiled serviceentry.Allowlist into Envoy resources (listeners, routes,
// clusters) and serves them to the Envoy egress gateway over ADS.
//
//	*serviceentry.Allowlist -> Translate -> Resources -> Publisher (snapshot cache) -> ADS -> Envoy
//
// Translate is pure: no I/O, deterministic output (sorted, stable names), so
// equal allowlists give byte-identical resources. The gateway it describes
// denies by default: HTTP by Host header, TLS by SNI (passthrough), TCP by
// destination address and port; everything else is refused and logged.
package xds
