package serviceentry

import (
	"slices"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// KindInfo is one kind of resource egressd reads: where Istio serves it,
// its spec message, how an object of it is validated into a Config, and
// what is kept of an invalid one. Every source (a folder of YAML, the
// Kubernetes API) goes through these, by BuildConfig; a new kind is one
// more entry in kinds.
type KindInfo struct {
	Kind string
	// APIVersions are the apiVersions the kind is served at; the first is
	// the one to suggest.
	APIVersions []string
	// NewSpec puts an empty spec of the kind on o and returns it, for a
	// decoder to fill.
	NewSpec func(o *Object) proto.Message
	// Validate checks one object of the kind and adds it to c when it is
	// valid (ok); it returns every problem found.
	Validate func(o Object, c *Config) (ok bool, problems []Problem)
	// FailClosed, for a kind that has one, keeps an object Validate
	// refused in a form that never opens what it meant to close, and
	// returns the Problem that says so (Code CodeFailClosed) if any.
	// problems are the object's. Nil: an invalid object is dropped.
	FailClosed func(o Object, problems []Problem, c *Config) []Problem
}

var networkingAPIVersions = []string{"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"}
var securityAPIVersions = []string{"security.istio.io/v1", "security.istio.io/v1beta1"}

// kinds are the kinds egressd reads, in the order their Config lists go.
var kinds = []KindInfo{
	{
		Kind:        KindServiceEntry,
		APIVersions: networkingAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.ServiceEntry = &networkingv1alpha3.ServiceEntry{}
			return o.ServiceEntry
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			e, ps := Validate(o)
			if e != nil {
				c.Entries = append(c.Entries, e)
			}
			return e != nil, ps
		},
	},
	{
		Kind:        KindDestinationRule,
		APIVersions: networkingAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.DestinationRule = &networkingv1alpha3.DestinationRule{}
			return o.DestinationRule
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			r, ps := ValidateRule(o)
			if r != nil {
				c.Rules = append(c.Rules, r)
			}
			return r != nil, ps
		},
		// The rule's hosts refuse plaintext until it is fixed (invalidRule);
		// the rule's own problems say why.
		FailClosed: func(o Object, problems []Problem, c *Config) []Problem {
			if r := invalidRule(o, problems); r != nil {
				c.Rules = append(c.Rules, r)
			}
			return nil
		},
	},
	{
		Kind:        KindVirtualService,
		APIVersions: networkingAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.VirtualService = &networkingv1alpha3.VirtualService{}
			return o.VirtualService
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			vs, ps := ValidateVirtualService(o)
			if vs != nil {
				c.VirtualServices = append(c.VirtualServices, vs)
			}
			return vs != nil, ps
		},
	},
	{
		Kind:        KindSidecar,
		APIVersions: networkingAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.Sidecar = &networkingv1alpha3.Sidecar{}
			return o.Sidecar
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			s, ps := ValidateSidecar(o)
			if s != nil {
				c.Sidecars = append(c.Sidecars, s)
			}
			return s != nil, ps
		},
	},
	{
		Kind:        KindAuthorizationPolicy,
		APIVersions: securityAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.AuthorizationPolicy = &securityv1beta1.AuthorizationPolicy{}
			return o.AuthorizationPolicy
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			p, ps := ValidateAuthorizationPolicy(o)
			if p != nil {
				c.AuthorizationPolicies = append(c.AuthorizationPolicies, p)
			}
			return p != nil, ps
		},
		FailClosed: func(o Object, problems []Problem, c *Config) []Problem {
			p, why := invalidPolicy(o, problems)
			if p == nil {
				return nil
			}
			c.AuthorizationPolicies = append(c.AuthorizationPolicies, p)
			return []Problem{why}
		},
	},
	{
		Kind:        KindPeerAuthentication,
		APIVersions: securityAPIVersions,
		NewSpec: func(o *Object) proto.Message {
			o.PeerAuthentication = &securityv1beta1.PeerAuthentication{}
			return o.PeerAuthentication
		},
		Validate: func(o Object, c *Config) (bool, []Problem) {
			p, ps := ValidatePeerAuthentication(o)
			if p != nil {
				c.PeerAuthentications = append(c.PeerAuthentications, p)
			}
			return p != nil, ps
		},
	},
}

// Kinds lists the kinds egressd reads.
func Kinds() []KindInfo { return slices.Clone(kinds) }

// LookupKind returns the kind named kind, false when egressd does not read
// it.
func LookupKind(kind string) (KindInfo, bool) {
	for _, k := range kinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// BuildConfig validates decoded objects, whatever their source, into a
// Config: each by its kind's Validate, and an invalid one kept in its
// kind's fail-closed form. It returns the Config and every problem, in
// object order; an invalid object never hides the valid ones beside it.
// Objects of a kind egressd does not read are skipped.
func BuildConfig(objects []Object) (Config, []Problem) {
	var c Config
	var problems []Problem
	for _, o := range objects {
		k, ok := LookupKind(o.Ref.Kind)
		if !ok {
			continue
		}
		valid, ps := k.Validate(o, &c)
		problems = append(problems, ps...)
		if !valid && k.FailClosed != nil {
			problems = append(problems, k.FailClosed(o, ps, &c)...)
		}
	}
	return c, problems
}

// Add appends other's resources to c.
func (c *Config) Add(other Config) {
	c.Entries = append(c.Entries, other.Entries...)
	c.Rules = append(c.Rules, other.Rules...)
	c.AuthorizationPolicies = append(c.AuthorizationPolicies, other.AuthorizationPolicies...)
	c.PeerAuthentications = append(c.PeerAuthentications, other.PeerAuthentications...)
	c.VirtualServices = append(c.VirtualServices, other.VirtualServices...)
	c.Sidecars = append(c.Sidecars, other.Sidecars...)
}
