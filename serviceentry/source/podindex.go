package source

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// podIPIndex is the name of the pod informers' index by pod IP.
const podIPIndex = "egressd.io/podIP"

// PodIndex finds the workload (namespace and service account) that owns a
// pod IP, from the pod informers of the Kubernetes source. Pods that use
// the host's network are not indexed: their IP is the node's, shared by
// every such pod. Pods that have finished (Succeeded, Failed) are skipped,
// as their IP may already belong to a new pod; readiness does not matter.
// Safe for concurrent use.
type PodIndex struct {
	indexers []cache.Indexer
}

// NewPodIndex adds the pod-IP index to the pod informers (one per watched
// namespace) and returns the index reading them. Call it before the
// informers start.
func NewPodIndex(informers ...cache.SharedIndexInformer) (*PodIndex, error) {
	p := &PodIndex{}
	for _, inf := range informers {
		if err := inf.AddIndexers(cache.Indexers{podIPIndex: podIPs}); err != nil {
			return nil, fmt.Errorf("pod index: %w", err)
		}
		p.indexers = append(p.indexers, inf.GetIndexer())
	}
	return p, nil
}

// Workload returns the namespace and service account of the pod whose IP
// is ip. If several live pods claim the IP (a pod being replaced), the most
// recently created wins.
func (p *PodIndex) Workload(ip netip.Addr) (namespace, serviceAccount string, ok bool) {
	if p == nil || !ip.IsValid() {
		return "", "", false
	}
	var best *corev1.Pod
	key := ip.Unmap().String()
	for _, idx := range p.indexers {
		objs, err := idx.ByIndex(podIPIndex, key)
		if err != nil {
			continue
		}
		for _, o := range objs {
			pod, isPod := o.(*corev1.Pod)
			if !isPod || !live(pod) {
				continue
			}
			if best == nil || newer(pod, best) {
				best = pod
			}
		}
	}
	if best == nil {
		return "", "", false
	}
	sa := best.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return best.Namespace, sa, true
}

// Addresses returns the pod addresses of every namespace, each sorted:
// every indexed IP with the namespace Workload gives it (so an IP two
// pods claim counts for the newer one's).
func (p *PodIndex) Addresses() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	if p == nil {
		return out
	}
	seen := map[string]bool{}
	for _, idx := range p.indexers {
		for _, key := range idx.ListIndexFuncValues(podIPIndex) {
			if seen[key] {
				continue
			}
			seen[key] = true
			ip, err := netip.ParseAddr(key)
			if err != nil {
				continue
			}
			if ns, _, ok := p.Workload(ip); ok {
				out[ns] = append(out[ns], ip)
			}
		}
	}
	for _, ips := range out {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	return out
}

// newer orders pods by creation time, then name for a stable choice.
func newer(a, b *corev1.Pod) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name > b.Namespace+"/"+b.Name
}

func live(pod *corev1.Pod) bool {
	return !pod.Spec.HostNetwork && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// podIPs is the index function: a pod's IPs in canonical form.
func podIPs(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.HostNetwork {
		return nil, nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		k := a.Unmap().String()
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	add(pod.Status.PodIP)
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
	return out, nil
}

// slimPod is the pod informers' transform: it keeps only what PodIndex
// reads, so that the cache of every pod in the cluster stays small.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, CreationTimestamp: pod.CreationTimestamp,
		},
		Spec: corev1.PodSpec{ServiceAccountName: pod.Spec.ServiceAccountName, HostNetwork: pod.Spec.HostNetwork},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
		},
	}, nil
}
