package main

import (
	"context"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/egressd/egressd/origination"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/source"
)

// allowlistObservers get every new allowlist from the source, in this
// order:
//
//  1. the credential mirror (--source kubernetes): it writes the Secrets
//     the DestinationRules name into --cert-dir, where
//  2. the origination store loads them (the clusters that need material
//     that is missing refuse traffic until it loads: fail closed);
//  3. every part that answers from the allowlist, together or not at all
//     (snapshotFanout: the gateway resolver, the gateway, the allowlist in
//     force for the intake, suggestions and dashboard, the DNS proxy). One
//     truth per snapshot: a translation failure leaves all on the last
//     good one, and the error says why.
type allowlistObservers struct {
	mirror    *source.SecretMirror // nil without the Kubernetes source
	certs     *origination.Store
	snapshots *snapshotFanout
	log       *zap.Logger

	loaded atomic.Bool // a first allowlist is in force
}

// Update hands a to every observer, in order.
func (o *allowlistObservers) Update(ctx context.Context, a *serviceentry.Allowlist) {
	if o.mirror != nil {
		o.mirror.Want(credentialNames(a))
	}
	for name, err := range o.certs.Want(origination.SourcesOf(a)) {
		o.log.Error("TLS origination material not loaded", zap.String("secret", name), zap.Error(err))
	}
	if o.snapshots.Update(ctx, a) {
		o.loaded.Store(true)
	}
}

// Loaded reports whether a first allowlist is in force.
func (o *allowlistObservers) Loaded() bool { return o.loaded.Load() }
