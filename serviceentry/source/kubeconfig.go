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
// specs are Istio's own messages and are used as they are.
func buildConfig(objs kubeObjects) (serviceentry.Config, []serviceentry.Problem) {
	sortByName(objs.entries)
	sortByName(objs.rules)
	sortByName(objs.policies)
	sortByName(objs.peers)

	objects := make([]serviceentry.Object, 0, len(objs.entries)+len(objs.rules)+len(objs.policies)+len(objs.peers))
	for _, se := range objs.entries {
		objects = append(objects, serviceentry.Object{Ref: kubeRef(serviceentry.KindServiceEntry, se), APIVersion: networkingAPIVersion, ServiceEntry: &se.Spec})
	}
	for _, dr := range objs.rules {
		objects = append(objects, serviceentry.Object{Ref: kubeRef(serviceentry.KindDestinationRule, dr), APIVersion: networkingAPIVersion, DestinationRule: &dr.Spec})
	}
	for _, ap := range objs.policies {
		objects = append(objects, serviceentry.Object{Ref: kubeRef(serviceentry.KindAuthorizationPolicy, ap), APIVersion: securityAPIVersion, AuthorizationPolicy: &ap.Spec})
	}
	for _, pa := range objs.peers {
		objects = append(objects, serviceentry.Object{Ref: kubeRef(serviceentry.KindPeerAuthentication, pa), APIVersion: securityAPIVersion, PeerAuthentication: &pa.Spec})
	}
	return serviceentry.BuildConfig(objects)
}
