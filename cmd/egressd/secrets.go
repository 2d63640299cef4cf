package main

import (
	"context"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// secretSource is one source of the SDS secrets the gateway is served: the
// TLS origination material (origination.Store), the gateway's own mesh
// certificate and trust bundle (identity.Gateway). Each tells the xDS
// server when its secrets change, and the server republishes.
type secretSource interface {
	// Secrets are the source's current secrets.
	Secrets() []*tlsv3.Secret
	// Run keeps them current until ctx ends.
	Run(ctx context.Context) error
}

// secretSources are every secret source, composed: the xDS server's one
// secret callback.
type secretSources []secretSource

// Secrets returns every source's secrets, in source order.
func (ss secretSources) Secrets() []*tlsv3.Secret {
	var out []*tlsv3.Secret
	for _, s := range ss {
		out = append(out, s.Secrets()...)
	}
	return out
}
