package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/egressd/egressd/serviceentry/source"
)

// kubeSource wires the Kubernetes source: clients from --kubeconfig (or
// the pod's service account), leader election for status writes, and the
// egressd_source_synced gauge. Every replica serves; only the leader
// writes status and Events.
type kubeSource struct {
	*source.Kube
	kube      kubernetes.Interface
	elect     bool
	namespace string
	id        string
	leader    atomic.Bool
	log       *zap.Logger
	// mirror writes the credential Secrets DestinationRules name into
	// --cert-dir, where the origination store reads them.
	mirror *source.SecretMirror
}

// newKubeSource is the Kubernetes source; its observer is set by Observe.
func newKubeSource(cfg *Config, log *zap.Logger, reg prometheus.Registerer) (*kubeSource, error) {
	rc, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ic, err := istioclient.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("istio client: %w", err)
	}
	synced := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "egressd_source_synced",
		Help: "1 once the Kubernetes source has synced and its watches are healthy; 0 while the API server is unreachable (the last snapshot keeps serving).",
	})
	if err := reg.Register(synced); err != nil {
		return nil, err
	}
	k := &kubeSource{kube: kc, elect: cfg.LeaderElect, namespace: cfg.LeaderElectionNamespace, log: log}
	if err := os.MkdirAll(cfg.CertDir, 0o700); err != nil {
		return nil, fmt.Errorf("--cert-dir: %w", err)
	}
	k.mirror = &source.SecretMirror{Kube: kc, Namespace: cfg.CredentialsNamespace, Dir: cfg.CertDir, Log: log.Named("credentials")}
	k.id, _ = os.Hostname()
	k.id = fmt.Sprintf("%s_%d", k.id, os.Getpid())
	k.Kube = &source.Kube{
		Kube: kc, Istio: ic, Namespaces: cfg.WatchNamespaces,
		Log: log, Synced: synced,
		IsLeader: func() bool { return !k.elect || k.leader.Load() },
	}
	return k, nil
}

// restConfig is the kubeconfig file when given, else the pod's in-cluster
// configuration, else $KUBECONFIG or ~/.kube/config.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return rc, nil
}

// Start runs the source and, with --leader-elect, the election for status
// writes, until ctx ends.
func (k *kubeSource) Start(ctx context.Context) error {
	if k.elect {
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: "egressd", Namespace: k.namespace},
			Client:     k.kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: k.id},
		}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   15 * time.Second,
			RenewDeadline:   10 * time.Second,
			RetryPeriod:     2 * time.Second,
			ReleaseOnCancel: true,
			Name:            "egressd",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					k.leader.Store(true)
					k.log.Info("leading: this replica writes status and Events", zap.String("id", k.id))
				},
				OnStoppedLeading: func() {
					k.leader.Store(false)
					k.log.Info("no longer leading", zap.String("id", k.id))
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		go func() {
			// Run returns when leadership is lost; stand again until ctx ends.
			for ctx.Err() == nil {
				le.Run(ctx)
			}
		}()
	}
	return k.Kube.Start(ctx)
}
