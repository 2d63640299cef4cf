package source

import (
	"encoding/json"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
// the resources of a file: the same Validate* function per kind, and the
// same fail-closed forms for an invalid DestinationRule that asks for TLS
// origination or an invalid ALLOW/DENY/CUSTOM AuthorizationPolicy (see
// failClosed). The typed objects' specs are Istio's own messages and are
// used as they are.
func buildConfig(objs kubeObjects) (serviceentry.Config, []serviceentry.Problem) {
	sortByName(objs.entries)
	sortByName(objs.rules)
	sortByName(objs.policies)
	sortByName(objs.peers)

	var c serviceentry.Config
	var problems []serviceentry.Problem
	for _, se := range objs.entries {
		o := serviceentry.Object{Ref: kubeRef(serviceentry.KindServiceEntry, se), APIVersion: networkingAPIVersion, ServiceEntry: &se.Spec}
		e, ps := serviceentry.Validate(o)
		problems = append(problems, ps...)
		if e != nil {
			c.Entries = append(c.Entries, e)
		}
	}
	for _, dr := range objs.rules {
		o := serviceentry.Object{Ref: kubeRef(serviceentry.KindDestinationRule, dr), APIVersion: networkingAPIVersion, DestinationRule: &dr.Spec}
		r, ps := serviceentry.ValidateRule(o)
		if r == nil {
			if fc, fps := failClosed(o, &dr.Spec); len(fc.Rules) > 0 {
				c.Rules = append(c.Rules, fc.Rules...)
				ps = fps
			}
		} else {
			c.Rules = append(c.Rules, r)
		}
		problems = append(problems, ps...)
	}
	for _, ap := range objs.policies {
		o := serviceentry.Object{Ref: kubeRef(serviceentry.KindAuthorizationPolicy, ap), APIVersion: securityAPIVersion, AuthorizationPolicy: &ap.Spec}
		p, ps := serviceentry.ValidateAuthorizationPolicy(o)
		if p == nil {
			if fc, fps := failClosed(o, &ap.Spec); len(fc.AuthorizationPolicies) > 0 {
				c.AuthorizationPolicies = append(c.AuthorizationPolicies, fc.AuthorizationPolicies...)
				ps = fps
			}
		} else {
			c.AuthorizationPolicies = append(c.AuthorizationPolicies, p)
		}
		problems = append(problems, ps...)
	}
	for _, pa := range objs.peers {
		o := serviceentry.Object{Ref: kubeRef(serviceentry.KindPeerAuthentication, pa), APIVersion: securityAPIVersion, PeerAuthentication: &pa.Spec}
		p, ps := serviceentry.ValidatePeerAuthentication(o)
		problems = append(problems, ps...)
		if p != nil {
			c.PeerAuthentications = append(c.PeerAuthentications, p)
		}
	}
	return c, problems
}

// failClosed returns what serviceentry.ParseConfig keeps of an invalid
// resource, with its problems. The fail-closed forms (a DestinationRule
// whose hosts then refuse plaintext, an AuthorizationPolicy that allows
// nothing or denies everything) are built by unexported code of package
// serviceentry; rather than copy it, the object is handed to ParseConfig
// as the one-resource JSON document kubectl would show, so both sources
// share one implementation. The Refs are set back to the object's (Line 0).
func failClosed(o serviceentry.Object, spec proto.Message) (serviceentry.Config, []serviceentry.Problem) {
	specJSON, err := protojson.Marshal(spec)
	if err != nil {
		return serviceentry.Config{}, nil
	}
	doc, err := json.Marshal(struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]string `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}{o.APIVersion, o.Ref.Kind, map[string]string{"name": o.Ref.Name, "namespace": o.Ref.Namespace}, specJSON})
	if err != nil {
		return serviceentry.Config{}, nil
	}
	c, ps := serviceentry.ParseConfig(KubeFile, doc)
	for _, r := range c.Rules {
		r.Ref = o.Ref
	}
	for _, p := range c.AuthorizationPolicies {
		p.Ref = o.Ref
	}
	for i := range ps {
		if ps[i].Ref.Kind == o.Ref.Kind && ps[i].Ref.Name == o.Ref.Name {
			ps[i].Ref = o.Ref
		}
	}
	return c, ps
}
