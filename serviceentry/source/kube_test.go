package source

import (
	"context"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	apinetworking "istio.io/api/networking/v1alpha3"
	apisecurity "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/egressd/egressd/serviceentry"
)

// TestMain turns client-go's streaming list (WatchListClient) off: the
// generated Istio fake clientset cannot send the initial events and
// bookmark it waits for, and (unlike client-go's own fake) cannot say so.
// Real API servers support it, or make the reflector fall back to a list.
func TestMain(m *testing.M) {
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	os.Exit(m.Run())
}

// kubeHarness runs a Kube source against fake clientsets.
type kubeHarness struct {
	k        *Kube
	kube     *kubefake.Clientset
	istio    *istiofake.Clientset
	recorder *record.FakeRecorder
	leader   atomic.Bool
	updates  chan *serviceentry.Allowlist
	gauge    prometheus.Gauge
}

// startKube starts a Kube source over fake clients holding objs, and waits
// until its informers watch (the fake clients do not replay changes made
// between list and watch) and the first snapshot is published.
func startKube(t *testing.T, namespaces []string, objs ...runtime.Object) *kubeHarness {
	t.Helper()
	var kubeObjs, istioObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*corev1.Pod); ok {
			kubeObjs = append(kubeObjs, o)
		} else {
			istioObjs = append(istioObjs, o)
		}
	}
	h := &kubeHarness{
		kube:     kubefake.NewClientset(kubeObjs...),
		istio:    istiofake.NewSimpleClientset(istioObjs...),
		recorder: record.NewFakeRecorder(100),
		updates:  make(chan *serviceentry.Allowlist, 100),
		gauge:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "egressd_source_synced"}),
	}
	h.leader.Store(true)
	var watches sync.WaitGroup
	nsCount := len(watchedNamespaces(namespaces))
	watches.Add(7*nsCount + 1) // 6 Istio kinds + pods per namespace, and namespaces
	var once sync.Map
	countWatch := func(a k8stesting.Action) (bool, watch.Interface, error) {
		key := a.GetResource().Resource + "/" + a.GetNamespace()
		if _, dup := once.LoadOrStore(key, true); !dup {
			watches.Done()
		}
		return false, nil, nil
	}
	h.kube.PrependWatchReactor("*", countWatch)
	h.istio.PrependWatchReactor("*", countWatch)
	h.k = &Kube{
		Kube: h.kube, Istio: h.istio, Namespaces: namespaces,
		Debounce: 50 * time.Millisecond,
		OnUpdate: func(_ context.Context, a *serviceentry.Allowlist) { h.updates <- a },
		IsLeader: h.leader.Load,
		Synced:   h.gauge,
		Recorder: h.recorder,
		tick:     20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.k.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Start did not return after cancel")
		}
	})
	watches.Wait()
	return h
}

// next waits for the next snapshot.
func (h *kubeHarness) next(t *testing.T) *serviceentry.Allowlist {
	t.Helper()
	select {
	case a := <-h.updates:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot published")
		return nil
	}
}

// until waits for a snapshot that satisfies ok.
func (h *kubeHarness) until(t *testing.T, what string, ok func(*serviceentry.Allowlist) bool) *serviceentry.Allowlist {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case a := <-h.updates:
			if ok(a) {
				return a
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s", what)
			return nil
		}
	}
}

// quiet asserts that no snapshot is published for d.
func (h *kubeHarness) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case a := <-h.updates:
		t.Fatalf("unexpected snapshot %s with hosts %v", a.Version(), hostNames(a))
	case <-time.After(d):
	}
}

func hasHost(name string) func(*serviceentry.Allowlist) bool {
	return func(a *serviceentry.Allowlist) bool { return a.Match(name) != nil }
}

func serviceEntry(ns, name string, hosts ...string) *networkingv1.ServiceEntry {
	return &networkingv1.ServiceEntry{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec: apinetworking.ServiceEntry{
			Hosts:      hosts,
			Ports:      []*apinetworking.ServicePort{{Number: 443, Protocol: "HTTPS", Name: "https"}},
			Location:   apinetworking.ServiceEntry_MESH_EXTERNAL,
			Resolution: apinetworking.ServiceEntry_DNS,
		},
	}
}

func create(t *testing.T, h *kubeHarness, se *networkingv1.ServiceEntry) {
	t.Helper()
	if _, err := h.istio.NetworkingV1().ServiceEntries(se.Namespace).Create(context.Background(), se, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestKubeCreateUpdateDelete(t *testing.T) {
	h := startKube(t, nil, serviceEntry("default", "api", "api.example.com"))
	first := h.next(t)
	if first.Match("api.example.com") == nil {
		t.Fatalf("initial snapshot hosts %v, want api.example.com", hostNames(first))
	}
	if e := first.Entries()[0]; e.Ref != (serviceentry.Ref{Kind: "ServiceEntry", Namespace: "default", Name: "api", File: KubeFile}) {
		t.Errorf("ref %+v", e.Ref)
	}
	if !h.k.Ready() {
		// pods may sync a moment later
		deadline := time.Now().Add(5 * time.Second)
		for !h.k.Ready() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !h.k.Ready() {
			t.Error("not Ready after sync")
		}
	}

	create(t, h, serviceEntry("team", "pay", "pay.example.com"))
	second := h.until(t, "pay.example.com", hasHost("pay.example.com"))
	if second.Version() == first.Version() {
		t.Error("version unchanged after adding a host")
	}

	se, _ := h.istio.NetworkingV1().ServiceEntries("team").Get(context.Background(), "pay", metav1.GetOptions{})
	se = se.DeepCopy()
	se.Spec.Hosts = []string{"billing.example.com"}
	if _, err := h.istio.NetworkingV1().ServiceEntries("team").Update(context.Background(), se, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	third := h.until(t, "billing.example.com", hasHost("billing.example.com"))
	if third.Match("pay.example.com") != nil {
		t.Error("pay.example.com still allowed after update")
	}

	if err := h.istio.NetworkingV1().ServiceEntries("default").Delete(context.Background(), "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fourth := h.until(t, "api.example.com gone", func(a *serviceentry.Allowlist) bool { return a.Match("api.example.com") == nil })
	if fourth.Match("billing.example.com") == nil {
		t.Error("billing.example.com lost")
	}

	// A change that does not change the compiled content publishes nothing.
	se, _ = h.istio.NetworkingV1().ServiceEntries("team").Get(context.Background(), "pay", metav1.GetOptions{})
	se = se.DeepCopy()
	se.Labels = map[string]string{"touched": "yes"}
	if _, err := h.istio.NetworkingV1().ServiceEntries("team").Update(context.Background(), se, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.quiet(t, 300*time.Millisecond)
	if got := testutil.ToFloat64(h.gauge); got != 1 {
		t.Errorf("synced gauge = %v, want 1", got)
	}
}

func TestKubeDebounce(t *testing.T) {
	h := startKube(t, nil)
	h.next(t)
	for i, host := range []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com", "e.example.com"} {
		create(t, h, serviceEntry("default", string(rune('a'+i)), host))
	}
	a := h.next(t)
	if got := len(a.Hosts()); got != 5 {
		t.Errorf("first snapshot after the burst has %d hosts (%v), want all 5 at once", got, hostNames(a))
	}
	h.quiet(t, 300*time.Millisecond)
}

func TestKubeNamespaces(t *testing.T) {
	h := startKube(t, []string{"team-a", "team-b", "team-a"},
		serviceEntry("team-a", "a", "a.example.com"),
		serviceEntry("other", "o", "other.example.com"),
	)
	a := h.next(t)
	if a.Match("a.example.com") == nil || a.Match("other.example.com") != nil {
		t.Fatalf("hosts %v, want only a.example.com", hostNames(a))
	}
	create(t, h, serviceEntry("other", "o2", "other2.example.com"))
	h.quiet(t, 300*time.Millisecond)
	create(t, h, serviceEntry("team-b", "b", "b.example.com"))
	a = h.until(t, "b.example.com", hasHost("b.example.com"))
	if a.Match("other2.example.com") != nil {
		t.Error("object outside the watched namespaces applied")
	}
}

// statusUpdates returns the UpdateStatus actions on ServiceEntries seen so far.
func statusUpdates(h *kubeHarness) []*networkingv1.ServiceEntry {
	var out []*networkingv1.ServiceEntry
	for _, a := range h.istio.Actions() {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || u.GetSubresource() != "status" || a.GetResource().Resource != "serviceentries" {
			continue
		}
		out = append(out, u.GetObject().(*networkingv1.ServiceEntry))
	}
	return out
}

func validCondition(se *networkingv1.ServiceEntry) *metav1alpha1.IstioCondition {
	for _, c := range se.Status.Conditions {
		if c.GetType() == ConditionValid {
			return c
		}
	}
	return nil
}

// waitStatus waits for the n-th status update.
func waitStatus(t *testing.T, h *kubeHarness, n int) *networkingv1.ServiceEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if us := statusUpdates(h); len(us) >= n {
			return us[n-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no status update #%d; actions: %v", n, h.istio.Actions())
	return nil
}

func invalidEntry(ns, name string) *networkingv1.ServiceEntry {
	se := serviceEntry(ns, name, "*")
	return se
}

func TestKubeInvalidReported(t *testing.T) {
	h := startKube(t, nil, serviceEntry("default", "good", "good.example.com"), invalidEntry("default", "bad"))
	a := h.next(t)
	if a.Match("good.example.com") == nil {
		t.Fatalf("valid entry not applied: hosts %v", hostNames(a))
	}
	if len(a.Entries()) != 1 {
		t.Errorf("entries %d, want 1", len(a.Entries()))
	}
	var found bool
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError && p.Ref.Name == "bad" {
			found = true
			if !strings.HasPrefix(p.Error(), "kubernetes: ServiceEntry default/bad: spec.hosts[0]") {
				t.Errorf("problem %q", p.Error())
			}
		}
	}
	if !found {
		t.Fatalf("no problem for default/bad: %v", a.Problems())
	}

	select {
	case ev := <-h.recorder.Events:
		if !strings.HasPrefix(ev, "Warning InvalidConfiguration spec.hosts[0]: ") {
			t.Errorf("event %q", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event recorded")
	}

	st := waitStatus(t, h, 1)
	if st.Name != "bad" {
		t.Fatalf("status written on %s, want bad", st.Name)
	}
	c := validCondition(st)
	if c == nil || c.Status != "False" || c.Reason != string(serviceentry.CodeInvalidSpec) || !strings.HasPrefix(c.Message, "spec.hosts[0]: ") || c.ObservedGeneration != 1 {
		t.Fatalf("condition %v", c)
	}
	if len(st.Status.ValidationMessages) != 1 || st.Status.ValidationMessages[0].GetType().GetCode() != ValidationCode {
		t.Errorf("validation messages %v", st.Status.ValidationMessages)
	}

	// The status write comes back as an update event: nothing is written
	// again, and no event is recorded twice.
	time.Sleep(300 * time.Millisecond)
	if n := len(statusUpdates(h)); n != 1 {
		t.Errorf("%d status updates, want 1 (no update loop)", n)
	}
	select {
	case ev := <-h.recorder.Events:
		t.Errorf("event recorded again: %q", ev)
	default:
	}

	// Fixed: the condition flips to True, the validation message goes.
	bad, _ := h.istio.NetworkingV1().ServiceEntries("default").Get(context.Background(), "bad", metav1.GetOptions{})
	bad = bad.DeepCopy()
	bad.Spec.Hosts = []string{"fixed.example.com"}
	bad.Generation = 2
	if _, err := h.istio.NetworkingV1().ServiceEntries("default").Update(context.Background(), bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.until(t, "fixed.example.com", hasHost("fixed.example.com"))
	st = waitStatus(t, h, 2)
	c = validCondition(st)
	if c == nil || c.Status != "True" || c.Reason != ReasonValid || c.ObservedGeneration != 2 {
		t.Fatalf("condition after fix %v", c)
	}
	if len(st.Status.ValidationMessages) != 0 {
		t.Errorf("validation messages after fix %v", st.Status.ValidationMessages)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(statusUpdates(h)); n != 2 {
		t.Errorf("%d status updates, want 2", n)
	}
	// The valid one was never touched.
	for _, u := range statusUpdates(h) {
		if u.Name == "good" {
			t.Error("status written on a valid resource that was never invalid")
		}
	}
}

func TestKubeNotLeader(t *testing.T) {
	h := startKube(t, nil, serviceEntry("default", "good", "good.example.com"), invalidEntry("default", "bad"))
	// Leader at first (bad is reported), then a follower: bad2 is not.
	a := h.next(t)
	waitStatus(t, h, 1)
	h.leader.Store(false)
	if a.Match("good.example.com") == nil {
		t.Fatal("valid entry not applied")
	}
	before := len(statusUpdates(h))
	for len(h.recorder.Events) > 0 {
		<-h.recorder.Events
	}
	create(t, h, invalidEntry("default", "bad2"))
	h.until(t, "problem for bad2", func(a *serviceentry.Allowlist) bool {
		for _, p := range a.Problems() {
			if p.Ref.Name == "bad2" {
				return true
			}
		}
		return false
	})
	time.Sleep(200 * time.Millisecond)
	if n := len(statusUpdates(h)); n != before {
		t.Errorf("follower wrote %d status updates", n-before)
	}
	select {
	case ev := <-h.recorder.Events:
		t.Errorf("follower recorded event %q", ev)
	default:
	}

	// Becoming leader reports what is invalid now.
	h.leader.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var names []string
		for _, u := range statusUpdates(h) {
			names = append(names, u.Name)
		}
		if strings.Contains(strings.Join(names, ","), "bad2") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("new leader did not write the status of bad2")
}

func TestKubeFollowerFromStart(t *testing.T) {
	hh := startKubeFollower(t)
	a := hh.next(t)
	if a.Match("good.example.com") == nil {
		t.Fatal("valid entry not applied")
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(statusUpdates(hh)); n != 0 {
		t.Errorf("follower wrote %d status updates", n)
	}
	if n := len(hh.recorder.Events); n != 0 {
		t.Errorf("follower recorded %d events", n)
	}
}

// startKubeFollower starts a source that is never leader.
func startKubeFollower(t *testing.T) *kubeHarness {
	t.Helper()
	h := &kubeHarness{
		kube:     kubefake.NewClientset(),
		istio:    istiofake.NewSimpleClientset(serviceEntry("default", "good", "good.example.com"), invalidEntry("default", "bad")),
		recorder: record.NewFakeRecorder(100),
		updates:  make(chan *serviceentry.Allowlist, 100),
	}
	h.k = &Kube{
		Kube: h.kube, Istio: h.istio, Debounce: 10 * time.Millisecond,
		OnUpdate: func(_ context.Context, a *serviceentry.Allowlist) { h.updates <- a },
		IsLeader: func() bool { return false },
		Recorder: h.recorder,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.k.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func TestKubeFailClosedForms(t *testing.T) {
	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "tls"},
		Spec: apinetworking.DestinationRule{
			Host: "api.example.com",
			TrafficPolicy: &apinetworking.TrafficPolicy{Tls: &apinetworking.ClientTLSSettings{
				Mode: apinetworking.ClientTLSSettings_MUTUAL, // no certificate: invalid
			}},
		},
	}
	ap := &securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "deny"},
		Spec: apisecurity.AuthorizationPolicy{
			Action: apisecurity.AuthorizationPolicy_DENY,
			Rules:  []*apisecurity.Rule{{When: []*apisecurity.Condition{{Key: "no.such.key", Values: []string{"x"}}}}},
		},
	}
	c, problems := buildConfig(kubeObjects{
		entries:  []*networkingv1.ServiceEntry{serviceEntry("default", "api", "api.example.com")},
		rules:    []*networkingv1.DestinationRule{dr},
		policies: []*securityv1.AuthorizationPolicy{ap},
	}, nil)
	if len(c.Rules) != 1 || c.Rules[0].Invalid == "" {
		t.Fatalf("invalid TLS rule not kept fail-closed: %+v", c.Rules)
	}
	if c.Rules[0].Ref != (serviceentry.Ref{Kind: "DestinationRule", Namespace: "default", Name: "tls", File: KubeFile}) {
		t.Errorf("rule ref %+v", c.Rules[0].Ref)
	}
	if len(c.AuthorizationPolicies) != 1 || c.AuthorizationPolicies[0].Invalid == "" || c.AuthorizationPolicies[0].Action != serviceentry.AuthzDeny {
		t.Fatalf("invalid DENY policy not kept fail-closed: %+v", c.AuthorizationPolicies)
	}
	for _, p := range problems {
		if p.Ref.Line != 0 || p.Ref.File != KubeFile {
			t.Errorf("problem ref %+v", p.Ref)
		}
	}
	if len(problems) < 2 {
		t.Errorf("problems %v", problems)
	}
}

func pod(ns, name, sa, ip string, hostNetwork bool, phase corev1.PodPhase, created time.Time) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, HostNetwork: hostNetwork},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func TestKubeWorkload(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := startKube(t, nil,
		pod("shop", "web-1", "web", "10.0.0.5", false, corev1.PodRunning, t0),
		pod("kube-system", "proxy", "kp", "192.168.1.10", true, corev1.PodRunning, t0),
		pod("old", "done", "batch", "10.0.0.6", false, corev1.PodSucceeded, t0),
		pod("new", "job", "", "10.0.0.6", false, corev1.PodPending, t0.Add(time.Hour)),
	)
	h.next(t)
	deadline := time.Now().Add(5 * time.Second)
	for !h.k.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	tests := map[string]struct {
		ip     string
		ns, sa string
		ok     bool
	}{
		"running pod":       {ip: "10.0.0.5", ns: "shop", sa: "web", ok: true},
		"ipv4-mapped":       {ip: "::ffff:10.0.0.5", ns: "shop", sa: "web", ok: true},
		"host network":      {ip: "192.168.1.10"},
		"unknown":           {ip: "10.9.9.9"},
		"finished pod skip": {ip: "10.0.0.6", ns: "new", sa: "default", ok: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns, sa, ok := h.k.Workload(netip.MustParseAddr(tc.ip))
			if ns != tc.ns || sa != tc.sa || ok != tc.ok {
				t.Errorf("Workload(%s) = %q, %q, %v; want %q, %q, %v", tc.ip, ns, sa, ok, tc.ns, tc.sa, tc.ok)
			}
		})
	}

	// A new pod is found once the informer has it.
	if _, err := h.kube.CoreV1().Pods("shop").Create(context.Background(),
		pod("shop", "web-2", "web2", "10.0.0.7", false, corev1.PodRunning, t0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, sa, ok := h.k.Workload(netip.MustParseAddr("10.0.0.7")); ok && sa == "web2" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("new pod not found")
}

func TestKubeWorkloadBeforeStart(t *testing.T) {
	var k Kube
	if _, _, ok := k.Workload(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("Workload ok before Start")
	}
	if k.Ready() {
		t.Error("Ready before Start")
	}
}

func TestWatchHealth(t *testing.T) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	h := &watchHealth{gauge: g, log: zap.NewNop(), failing: map[string]time.Time{}}
	h.set(false)
	h.synced()
	if testutil.ToFloat64(g) != 1 {
		t.Fatal("not 1 after sync")
	}
	h.watchError("serviceentries", context.DeadlineExceeded)
	if testutil.ToFloat64(g) != 0 {
		t.Fatal("not 0 after a watch error")
	}
	h.event("pods")
	if testutil.ToFloat64(g) != 0 {
		t.Fatal("another informer's event cleared the error")
	}
	h.event("serviceentries")
	if testutil.ToFloat64(g) != 1 {
		t.Fatal("not 1 after the failing informer's event")
	}
	h.watchError("pods", context.DeadlineExceeded)
	h.expire(time.Now())
	if testutil.ToFloat64(g) != 0 {
		t.Fatal("recovered too early")
	}
	h.expire(time.Now().Add(WatchRecovery))
	if testutil.ToFloat64(g) != 1 {
		t.Fatal("not recovered after WatchRecovery without errors")
	}
}

// TestKubeExportTo: exportTo set on a ServiceEntry in the cluster reaches
// the compiled entry (the gateway enforces it where the caller is known),
// and changing it alone publishes a new snapshot.
func TestKubeExportTo(t *testing.T) {
	se := serviceEntry("team-a", "ledger", "ledger.example.com")
	se.Spec.ExportTo = []string{"."}
	h := startKube(t, nil, se)
	a := h.next(t)
	if got := a.Entries()[0].ExportTo; len(got) != 1 || got[0] != "." {
		t.Fatalf("exportTo %v, want [.]", got)
	}
	updated := se.DeepCopy()
	updated.Spec.ExportTo = []string{".", "team-b"}
	if _, err := h.istio.NetworkingV1().ServiceEntries("team-a").Update(context.Background(), updated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := h.until(t, "exportTo [., team-b]", func(a *serviceentry.Allowlist) bool {
		e := a.Entries()
		return len(e) == 1 && len(e[0].ExportTo) == 2 && e[0].ExportTo[1] == "team-b"
	})
	if b.Version() == a.Version() {
		t.Error("version unchanged after an exportTo change")
	}
}

// TestBuildConfigReusesValidatedObjects: with the cache, an object read
// again (the informer's same pointer) keeps its validated entry, and a
// replaced one is validated again; the Config equals a fresh build's.
func TestBuildConfigReusesValidatedObjects(t *testing.T) {
	a := serviceEntry("default", "a", "a.example.com")
	b := serviceEntry("default", "b", "b.example.com")
	var cache validated
	first, _ := buildConfig(kubeObjects{entries: []*networkingv1.ServiceEntry{a, b}}, &cache)
	b2 := serviceEntry("default", "b", "b.example.com", "c.example.com")
	second, problems := buildConfig(kubeObjects{entries: []*networkingv1.ServiceEntry{b2, a}}, &cache)
	fresh, freshProblems := buildConfig(kubeObjects{entries: []*networkingv1.ServiceEntry{b2, a}}, nil)
	if !reflect.DeepEqual(second, fresh) || !reflect.DeepEqual(problems, freshProblems) {
		t.Fatalf("cached build differs from a fresh one:\n%+v\n%+v", second, fresh)
	}
	if len(second.Entries) != 2 || second.Entries[0] != first.Entries[0] {
		t.Fatal("the unchanged ServiceEntry was validated again")
	}
	if second.Entries[1] == first.Entries[1] || len(second.Entries[1].Hosts) != 2 {
		t.Fatalf("the replaced ServiceEntry kept its old validation: %+v", second.Entries[1])
	}
	if len(cache.byObject) != 2 {
		t.Fatalf("the cache holds %d objects, want the last read's 2", len(cache.byObject))
	}
}
