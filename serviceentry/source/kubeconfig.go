package source

import (
	"sort"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/egressd/egressd/serviceentry"
)

// KubeFile is the Ref.File of every resource read from the Kubernetes API,
// so that Problems say where a resource came from as they do for files.
const KubeFile = "kubernetes"

// The apiVersions the Kubernetes source reads the Istio kinds at.
const (
	networkingAPIVersion = "networking.istio.io/v1"
	securityAPIVersion   = "security.istio.io/v1"
)

// kubeObjects is one consistent read of the informer caches.
type kubeObjects struct {
	entries  []*networkingv1.ServiceEntry
	rules    []*networkingv1.DestinationRule
	policies []*securityv1.AuthorizationPolicy
	peers    []*securityv1.PeerAuthentication
	services []*networkingv1.VirtualService
	sidecars []*networkingv1.Sidecar
	// auditNamespaces carry serviceentry.SidecarAuditLabel.
	auditNamespaces []string
}

// sortByName orders objects by namespace, then name, so that the problems
// (and so the snapshot key) do not depend on the caches' map order.
func sortByName[T metav1.Object](objs []T) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

// kubeRef names a Kubernetes object as serviceentry does: File is KubeFile,
// Line 0.
func kubeRef(kind string, o metav1.Object) serviceentry.Ref {
	ns := o.GetNamespace()
	if ns == "" {
		ns = serviceentry.DefaultNamespace
	}
	return serviceentry.Ref{Kind: kind, Namespace: ns, Name: o.GetName(), File: KubeFile}
}

// buildConfig validates the objects as serviceentry.ParseConfig validates
// the resources of a file, through serviceentry.BuildConfig: the same
// validation per kind and the same fail-closed forms. The typed objects'
// specs are Istio's own messages and are used as they are. An object
// validated before, with cache (may be nil), is not validated again.
func buildConfig(objs kubeObjects, cache *validated) (serviceentry.Config, []serviceentry.Problem) {
	sortByName(objs.entries)
	sortByName(objs.rules)
	sortByName(objs.policies)
	sortByName(objs.peers)
	sortByName(objs.services)
	sortByName(objs.sidecars)

	b := configBuilder{cache: cache, next: make(map[any]validatedObject,
		len(objs.entries)+len(objs.rules)+len(objs.policies)+len(objs.peers)+len(objs.services)+len(objs.sidecars))}
	addAll(&b, objs.entries, func(o *networkingv1.ServiceEntry) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindServiceEntry, o), APIVersion: networkingAPIVersion, ServiceEntry: &o.Spec}
	})
	addAll(&b, objs.rules, func(o *networkingv1.DestinationRule) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindDestinationRule, o), APIVersion: networkingAPIVersion, DestinationRule: &o.Spec}
	})
	addAll(&b, objs.policies, func(o *securityv1.AuthorizationPolicy) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindAuthorizationPolicy, o), APIVersion: securityAPIVersion, AuthorizationPolicy: &o.Spec}
	})
	addAll(&b, objs.peers, func(o *securityv1.PeerAuthentication) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindPeerAuthentication, o), APIVersion: securityAPIVersion, PeerAuthentication: &o.Spec}
	})
	addAll(&b, objs.services, func(o *networkingv1.VirtualService) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindVirtualService, o), APIVersion: networkingAPIVersion, VirtualService: &o.Spec}
	})
	addAll(&b, objs.sidecars, func(o *networkingv1.Sidecar) serviceentry.Object {
		return serviceentry.Object{Ref: kubeRef(serviceentry.KindSidecar, o), APIVersion: networkingAPIVersion, Sidecar: &o.Spec}
	})
	cache.keep(b.next)
	b.config.AuditNamespaces = objs.auditNamespaces
	return b.config, b.problems
}

// configBuilder collects the objects' validation into one Config.
type configBuilder struct {
	cache    *validated
	next     map[any]validatedObject
	config   serviceentry.Config
	problems []serviceentry.Problem
}

// addAll adds objects of one kind: validated again unless the cache has
// the same object.
func addAll[T comparable](b *configBuilder, objs []T, object func(T) serviceentry.Object) {
	for _, o := range objs {
		v, ok := b.cache.get(o)
		if !ok {
			v.config, v.problems = serviceentry.BuildConfig([]serviceentry.Object{object(o)})
		}
		b.next[o] = v
		b.config.Add(v.config)
		b.problems = append(b.problems, v.problems...)
	}
}

// validated keeps what validating each object of the last read gave, by
// the object's pointer: informer caches never change an object in place
// (an update replaces it), so the same pointer is the same content. It
// holds the last read's objects only. Reusing the validated resources
// also keeps their pointers, so the compile after a one-object change
// hashes that object alone (serviceentry.CompileConfigWith).
type validated struct {
	byObject map[any]validatedObject
}

// validatedObject is one object's part of the Config, and its problems.
type validatedObject struct {
	config   serviceentry.Config
	problems []serviceentry.Problem
}

func (v *validated) get(key any) (validatedObject, bool) {
	if v == nil {
		return validatedObject{}, false
	}
	o, ok := v.byObject[key]
	return o, ok
}

func (v *validated) keep(next map[any]validatedObject) {
	if v != nil {
		v.byObject = next
	}
}
