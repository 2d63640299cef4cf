package main

import (
	"syscall"

	"go.uber.org/zap"

	"github.com/egressd/egressd/egress/envoy"
)

// connectionBudget raises this process's file descriptor limit to its hard
// limit (the managed Envoy inherits it) and returns how many downstream
// connections Envoy may hold open: each may need an upstream connection
// too, and Envoy needs some for itself (listeners, xDS, access logs, DNS),
// so half of what the limit leaves, at most
// envoy.DefaultMaxDownstreamConnections. A flood then makes Envoy refuse
// connections instead of running out of descriptors.
func connectionBudget(log *zap.Logger) int64 {
	const reserve = 512
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("file descriptor limit unknown; bounding Envoy's connections by the default", zap.Error(err))
		return envoy.DefaultMaxDownstreamConnections
	}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	budget := int64(envoy.DefaultMaxDownstreamConnections)
	if lim.Cur < uint64(2*budget+reserve) {
		budget = max(int64(lim.Cur)-reserve, 64) / 2
	}
	log.Info("envoy connection bound", zap.Int64("max_downstream_connections", budget), zap.Uint64("file_descriptor_limit", lim.Cur))
	return budget
}
