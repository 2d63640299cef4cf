package main

import (
	"context"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/source"
)

// configSource is where the allowlist comes from: a folder or the cluster.
type configSource interface {
	// Observe sets who gets each new allowlist; call it once, before
	// Start.
	Observe(func(context.Context, *serviceentry.Allowlist))
	// Start runs the source until ctx ends.
	Start(ctx context.Context) error
	// Ready reports whether the source has synced.
	Ready() bool
	// Workload names the workload at a pod address (namespace and
	// service account), when the source knows pods.
	Workload(ip netip.Addr) (namespace, serviceAccount string, ok bool)
}

// newConfigSource is --source: the folder, or the Kubernetes API.
func newConfigSource(cfg *Config, log *zap.Logger, reg prometheus.Registerer) (configSource, error) {
	if cfg.Source == sourceKubernetes {
		return newKubeSource(cfg, log, reg)
	}
	return &dirSource{Dir: source.Dir{Path: cfg.ConfigDir, Log: log}}, nil
}

// dirSource is the folder source: always ready, no pods.
type dirSource struct{ source.Dir }

func (d *dirSource) Observe(f func(context.Context, *serviceentry.Allowlist)) { d.OnUpdate = f }
func (d *dirSource) Ready() bool                                              { return true }
func (d *dirSource) Workload(netip.Addr) (string, string, bool)               { return "", "", false }

// Observe implements configSource.
func (k *kubeSource) Observe(f func(context.Context, *serviceentry.Allowlist)) { k.Kube.OnUpdate = f }
