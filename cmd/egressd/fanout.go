package main

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
)

// allowlistHolder is a part of egressd that answers from one allowlist
// (the DNS proxy, the gateway resolver).
type allowlistHolder interface {
	SetAllowlist(*serviceentry.Allowlist)
}

// snapshotFanout moves every part of egressd to a new allowlist together,
// or none of them (one truth per snapshot). In order:
//
//  1. the gateway resolver: the DNS clusters about to reach the gateway
//     resolve through it, so it must know their names first;
//  2. the gateway (translate, validate, publish). If that fails, the
//     resolver goes back to the allowlist in force and nothing else moves;
//  3. the allowlist in force (Current: the intake, the suggestions, the
//     dashboard read it) and the DNS proxy.
type snapshotFanout struct {
	resolver allowlistHolder
	gateway  func(context.Context, *serviceentry.Allowlist) error
	dns      allowlistHolder // nil without a DNS proxy
	log      *zap.Logger

	current atomic.Pointer[serviceentry.Allowlist]
	at      atomic.Int64 // unix nanoseconds of the last move
}

// Update moves the parts to a and reports whether they moved.
func (f *snapshotFanout) Update(ctx context.Context, a *serviceentry.Allowlist) bool {
	previous := f.current.Load()
	f.resolver.SetAllowlist(a)
	if err := f.gateway(ctx, a); err != nil {
		f.resolver.SetAllowlist(previous)
		f.log.Error("gateway configuration not updated; every part keeps the previous allowlist",
			zap.String("rejected", a.Version()), zap.String("kept", versionOf(previous)), zap.Error(err))
		return false
	}
	f.current.Store(a)
	if f.dns != nil {
		f.dns.SetAllowlist(a)
	}
	f.at.Store(time.Now().UnixNano())
	return true
}

// Current is the allowlist in force, nil before the first.
func (f *snapshotFanout) Current() *serviceentry.Allowlist { return f.current.Load() }

// Since is when the allowlist in force took effect (zero before).
func (f *snapshotFanout) Since() time.Time {
	if n := f.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
