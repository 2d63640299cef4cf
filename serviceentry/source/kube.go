package source

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioscheme "istio.io/client-go/pkg/clientset/versioned/scheme"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	networkinglisters "istio.io/client-go/pkg/listers/networking/v1"
	securitylisters "istio.io/client-go/pkg/listers/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	kubescheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/egressd/egressd/serviceentry"
)

// Kube watches Istio's ServiceEntries, DestinationRules,
// AuthorizationPolicies and PeerAuthentications in the Kubernetes API and
// publishes the same compiled Allowlist the Dir source builds from files:
// each object is validated by the same serviceentry functions and the
// whole set compiled by serviceentry.CompileConfig. It also keeps an index
// of pod IPs for Workload.
//
// Fail closed: nothing is published before every Istio informer has
// listed its kind once (a partial read could miss a DENY policy), and
// while the API server is unreachable the informers keep their caches, so
// the last snapshot stays in place; nothing is ever published empty for
// lack of a connection.
//
// Invalid resources are reported on the resources themselves by the leader
// (IsLeader): a Warning Event per error (reason EventReasonInvalid), and
// the status condition ConditionValid (False with the errors, back to True
// once fixed) plus a status.validationMessages entry with code
// ValidationCode. Status is written only when it differs from what the
// object has, so that the write's own watch event changes nothing.
type Kube struct {
	// Kube is the Kubernetes client (pods, Events).
	Kube kubernetes.Interface
	// Istio is the Istio client (the Istio kinds and their status).
	Istio istioclient.Interface
	// Namespaces are the namespaces watched; empty (or one "") watches
	// every namespace.
	Namespaces []string
	// Debounce is how long a change waits for more before the compile:
	// every change within Debounce of the first one of a burst is
	// compiled once. The delay is never extended, so a steady stream of
	// changes still compiles every Debounce. Default 100 ms.
	Debounce time.Duration
	// Resync is the informers' resync period, which also re-checks the
	// status of every resource. Default 10 min.
	Resync time.Duration
	// Log receives load, problem and watch reports.
	Log *zap.Logger
	// OnUpdate is called with each new snapshot, first once the informers
	// have synced, then after each change whose compiled content or
	// problems differ from the previous snapshot's.
	OnUpdate func(context.Context, *serviceentry.Allowlist)
	// IsLeader reports whether this replica writes status and Events
	// (leader election is wired by egressd). nil: always.
	IsLeader func() bool
	// Synced, when set (egressd_source_synced), is 1 once every informer
	// has synced and the watches are healthy, 0 before that and while a
	// watch reports errors. An informer's error clears on its next event,
	// or once it has reported none for WatchRecovery (the reflector
	// retries with backoff and reports each failed attempt, so that long
	// a silence means it is back).
	Synced prometheus.Gauge
	// Recorder receives the Events on invalid resources. nil: Start
	// records them to the events API through Kube, as component "egressd".
	// Tests set a record.FakeRecorder.
	Recorder record.EventRecorder

	// OnPods, when set, is called on every pod event (from the informers'
	// goroutines; it must not block): PodAddresses has changed, or may
	// have.
	OnPods func()

	ready atomic.Bool
	pods  atomic.Pointer[PodIndex]
	// tick is how often Start checks leadership and watch health (tests
	// shorten it).
	tick time.Duration
}

// WatchRecovery is how long an informer must go without a watch error for
// Kube to count its watch as healthy again (see Kube.Synced); it exceeds
// client-go's longest backoff between retries (30 s).
const WatchRecovery = time.Minute

// statusRetry is how long Start waits before retrying failed status writes.
const statusRetry = 5 * time.Second

// Ready reports whether every informer (the Istio kinds and pods) has
// synced at least once.
func (k *Kube) Ready() bool { return k.ready.Load() }

// Workload returns the namespace and service account of the pod with IP
// ip, from the pod informers (see PodIndex). ok is false before Start,
// for unknown IPs and for host-network pods.
func (k *Kube) Workload(ip netip.Addr) (namespace, serviceAccount string, ok bool) {
	return k.pods.Load().Workload(ip)
}

// PodAddresses returns the pod addresses by namespace (see
// PodIndex.Addresses); empty before Start.
func (k *Kube) PodAddresses() map[string][]netip.Addr {
	return k.pods.Load().Addresses()
}

// kubeListers reads the Istio informer caches of every watched namespace.
type kubeListers struct {
	entries  []networkinglisters.ServiceEntryLister
	rules    []networkinglisters.DestinationRuleLister
	policies []securitylisters.AuthorizationPolicyLister
	peers    []securitylisters.PeerAuthenticationLister
	services []networkinglisters.VirtualServiceLister
	sidecars []networkinglisters.SidecarLister
	// namespaces is nil before Start.
	namespaces corelisters.NamespaceLister
}

func (l *kubeListers) read() kubeObjects {
	o := kubeObjects{
		entries: listAll(l.entries), rules: listAll(l.rules), policies: listAll(l.policies),
		peers: listAll(l.peers), services: listAll(l.services), sidecars: listAll(l.sidecars),
	}
	if l.namespaces != nil {
		sel := labels.SelectorFromSet(labels.Set{serviceentry.SidecarAuditLabel: "true"})
		nss, _ := l.namespaces.List(sel)
		for _, ns := range nss {
			o.auditNamespaces = append(o.auditNamespaces, ns.Name)
		}
	}
	return o
}

// listAll lists every object of the listers (one per watched namespace).
func listAll[T any, L interface {
	List(labels.Selector) ([]T, error)
}](listers []L) []T {
	var out []T
	for _, x := range listers {
		v, _ := x.List(labels.Everything())
		out = append(out, v...)
	}
	return out
}

// watchedNamespaces returns the namespaces to build informers for, sorted
// and without duplicates; [""] (all) when ns is empty or includes "".
func watchedNamespaces(ns []string) []string {
	if len(ns) == 0 || slices.Contains(ns, "") {
		return []string{""}
	}
	out := slices.Clone(ns)
	slices.Sort(out)
	return slices.Compact(out)
}

// Start runs the informers and publishes snapshots until ctx ends. API
// errors never end it: client-go retries with backoff while the last
// snapshot stays. It returns after the informers have stopped; the error
// is for missing clients only.
func (k *Kube) Start(ctx context.Context) error {
	if k.Kube == nil || k.Istio == nil {
		return errors.New("kubernetes source: Kube and Istio clients are required")
	}
	if k.Debounce <= 0 {
		k.Debounce = 100 * time.Millisecond
	}
	if k.Resync <= 0 {
		k.Resync = 10 * time.Minute
	}
	if k.Log == nil {
		k.Log = zap.NewNop()
	}
	if k.tick <= 0 {
		k.tick = 5 * time.Second
	}
	health := &watchHealth{gauge: k.Synced, log: k.Log, failing: map[string]time.Time{}}
	health.set(false)

	changes := make(chan struct{}, 1)
	notify := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	var (
		ls                      kubeListers
		configSynced, allSynced []cache.InformerSynced
		podInformers            []cache.SharedIndexInformer
		istioFactories          []istioinformers.SharedInformerFactory
		kubeFactories           []informers.SharedInformerFactory
	)
	for _, ns := range watchedNamespaces(k.Namespaces) {
		f := istioinformers.NewSharedInformerFactoryWithOptions(k.Istio, k.Resync, istioinformers.WithNamespace(ns))
		istioFactories = append(istioFactories, f)
		se, dr := f.Networking().V1().ServiceEntries(), f.Networking().V1().DestinationRules()
		ap, pa := f.Security().V1().AuthorizationPolicies(), f.Security().V1().PeerAuthentications()
		ls.entries = append(ls.entries, se.Lister())
		ls.rules = append(ls.rules, dr.Lister())
		ls.policies = append(ls.policies, ap.Lister())
		ls.peers = append(ls.peers, pa.Lister())
		vs, sc := f.Networking().V1().VirtualServices(), f.Networking().V1().Sidecars()
		ls.services = append(ls.services, vs.Lister())
		ls.sidecars = append(ls.sidecars, sc.Lister())
		for name, inf := range map[string]cache.SharedIndexInformer{
			"serviceentries": se.Informer(), "destinationrules": dr.Informer(),
			"authorizationpolicies": ap.Informer(), "peerauthentications": pa.Informer(),
			"virtualservices": vs.Informer(), "sidecars": sc.Informer(),
		} {
			if err := k.watch(ctx, inf, name, ns, health, notify); err != nil {
				return err
			}
			configSynced = append(configSynced, inf.HasSynced)
		}

		kf := informers.NewSharedInformerFactoryWithOptions(k.Kube, k.Resync, informers.WithNamespace(ns),
			informers.WithTransform(slimPod))
		kubeFactories = append(kubeFactories, kf)
		pods := kf.Core().V1().Pods().Informer()
		if err := k.watch(ctx, pods, "pods", ns, health, k.OnPods); err != nil {
			return err
		}
		podInformers = append(podInformers, pods)
		allSynced = append(allSynced, pods.HasSynced)
	}
	// Namespaces (cluster-wide): the label that dry-runs a Sidecar.
	nf := informers.NewSharedInformerFactory(k.Kube, k.Resync)
	kubeFactories = append(kubeFactories, nf)
	nsInformer := nf.Core().V1().Namespaces()
	ls.namespaces = nsInformer.Lister()
	if err := k.watch(ctx, nsInformer.Informer(), "namespaces", "", health, notify); err != nil {
		return err
	}
	configSynced = append(configSynced, nsInformer.Informer().HasSynced)
	allSynced = append(allSynced, configSynced...)
	index, err := NewPodIndex(podInformers...)
	if err != nil {
		return err
	}
	k.pods.Store(index)

	rec := k.Recorder
	if rec == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.Kube.CoreV1().Events("")})
		defer b.Shutdown()
		rec = b.NewRecorder(eventScheme(), corev1.EventSource{Component: "egressd"})
	}
	reporter := newStatusReporter(k.Istio, rec, k.Log)

	var wg sync.WaitGroup
	defer wg.Wait()
	for _, f := range istioFactories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	for _, f := range kubeFactories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	wg.Go(func() {
		if cache.WaitForCacheSync(ctx.Done(), allSynced...) {
			k.ready.Store(true)
			health.synced()
			k.Log.Info("kubernetes informers synced")
		}
	})
	if !cache.WaitForCacheSync(ctx.Done(), configSynced...) {
		return nil // ctx ended before the first list
	}

	leader := k.isLeader()
	var compiled compileState
	last, ok := k.update(ctx, "", &ls, reporter, &compiled)
	var timer, retry <-chan time.Time
	if !ok {
		retry = time.After(statusRetry)
	}
	tick := time.NewTicker(k.tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
			if timer == nil {
				timer = time.After(k.Debounce)
			}
		case <-retry:
			retry = nil
			if timer == nil {
				timer = time.After(0)
			}
		case <-tick.C:
			health.expire(time.Now())
			if now := k.isLeader(); now != leader {
				leader = now
				if leader {
					k.Log.Info("leader: reporting invalid resources")
					if timer == nil {
						timer = time.After(0)
					}
				} else {
					reporter.reset()
				}
			}
		case <-timer:
			timer = nil
			if last, ok = k.update(ctx, last, &ls, reporter, &compiled); !ok && retry == nil {
				retry = time.After(statusRetry)
			}
		}
	}
}

func (k *Kube) isLeader() bool { return k.IsLeader == nil || k.IsLeader() }

// watch sets up one informer: its watch error handler, and (when notify
// is set) an event handler that asks for a compile. Any event also tells
// health the watch works.
func (k *Kube) watch(ctx context.Context, inf cache.SharedIndexInformer, kind, ns string, health *watchHealth, notify func()) error {
	name := kind
	if ns != "" {
		name = ns + "/" + kind
	}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		if ctx.Err() != nil || errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return // shutting down, or a watch that ended normally and is resumed
		}
		health.watchError(name, err)
	}); err != nil {
		return err
	}
	event := func() {
		health.event(name)
		if notify != nil {
			notify()
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { event() },
		UpdateFunc: func(any, any) { event() },
		DeleteFunc: func(any) { event() },
	})
	return err
}

// update compiles the informers' content, publishes it unless its key is
// last, and (as leader) reports invalid resources. It returns the new key
// and false if a status write failed.
func (k *Kube) update(ctx context.Context, last string, ls *kubeListers, rep *statusReporter, compiled *compileState) (string, bool) {
	objs := ls.read()
	c, problems := buildConfig(objs, &compiled.validated)
	a := serviceentry.CompileConfigWith(c, problems, compiled.allowlist)
	compiled.allowlist = a
	ok := true
	if k.isLeader() {
		ok = !rep.reconcile(ctx, objs, a.Problems())
	}
	key := snapshotKey(a)
	if key == last {
		k.Log.Debug("config unchanged", zap.String("version", a.Version()))
		return last, ok
	}
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError {
			k.Log.Error("invalid resource skipped", zap.String("problem", p.Error()),
				zap.String("resource", p.Ref.String()), zap.String("kind", p.Ref.Kind), zap.String("field", p.Field))
		} else {
			k.Log.Warn("resource warning", zap.String("problem", p.Error()))
		}
	}
	k.Log.Info("allowlist loaded", zap.String("source", KubeFile), zap.String("version", a.Version()),
		zap.Int("serviceentries", len(a.Entries())), zap.Int("destinationrules", len(a.Rules())), zap.Int("hosts", len(a.Hosts())),
		zap.Int("problems", len(a.Problems())))
	if k.OnUpdate != nil {
		k.OnUpdate(ctx, a)
	}
	return key, ok
}

// compileState is what one update keeps for the next: the objects'
// validation, and the allowlist compiled.
type compileState struct {
	validated validated
	allowlist *serviceentry.Allowlist
}

// eventScheme knows the Kubernetes and Istio kinds, so that Events can
// name their object.
func eventScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = kubescheme.AddToScheme(s)
	_ = istioscheme.AddToScheme(s)
	return s
}

// watchHealth drives the Synced gauge: 1 when every informer has synced
// and no watch is failing.
type watchHealth struct {
	gauge prometheus.Gauge
	log   *zap.Logger

	mu       sync.Mutex
	isSynced bool
	failing  map[string]time.Time // informer -> last error
}

func (h *watchHealth) set(ok bool) {
	if h.gauge == nil {
		return
	}
	if ok {
		h.gauge.Set(1)
	} else {
		h.gauge.Set(0)
	}
}

func (h *watchHealth) synced() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.isSynced = true
	h.set(len(h.failing) == 0)
}

func (h *watchHealth) watchError(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, was := h.failing[name]; !was {
		h.log.Warn("kubernetes watch failing; keeping the last allowlist", zap.String("informer", name), zap.Error(err))
	} else {
		h.log.Debug("kubernetes watch still failing", zap.String("informer", name), zap.Error(err))
	}
	h.failing[name] = time.Now()
	h.set(false)
}

// event marks name's watch as working (it delivered an event).
func (h *watchHealth) event(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, was := h.failing[name]; was {
		h.recovered(name)
	}
}

// expire marks watches with no error for WatchRecovery as working.
func (h *watchHealth) expire(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, t := range h.failing {
		if now.Sub(t) >= WatchRecovery {
			h.recovered(name)
		}
	}
}

func (h *watchHealth) recovered(name string) {
	delete(h.failing, name)
	h.log.Info("kubernetes watch recovered", zap.String("informer", name))
	h.set(h.isSynced && len(h.failing) == 0)
}
