package serviceentry

import (
	"strings"

	yaml "go.yaml.in/yaml/v3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/egressd/egressd/serviceentry/strict"
)

// salvagePolicy reads, from the spec of an AuthorizationPolicy that failed
// to decode, what keeping it in a fail-closed form needs: its action and
// its selector. What cannot be read is assumed the closing way: an action
// that is not ALLOW or AUDIT (or is unreadable) becomes DENY, as does
// CUSTOM; a selector that does not decode selects every workload (and
// selectorLost is true). The rules are never read: invalidPolicy gives the
// policy rules of its own.
func salvagePolicy(spec *yaml.Node) (ap *securityv1beta1.AuthorizationPolicy, selectorLost bool) {
	ap = &securityv1beta1.AuthorizationPolicy{Action: securityv1beta1.AuthorizationPolicy_DENY}
	if spec == nil || strict.IsNull(spec) {
		// An empty spec decodes; only its metadata or apiVersion failed.
		ap.Action = securityv1beta1.AuthorizationPolicy_ALLOW
		return ap, false
	}
	if spec.Kind != yaml.MappingNode {
		return ap, false
	}
	var action, selector *yaml.Node
	for i := 0; i+1 < len(spec.Content); i += 2 {
		switch spec.Content[i].Value {
		case "action":
			action = spec.Content[i+1]
		case "selector":
			selector = spec.Content[i+1]
		}
	}
	switch {
	case action == nil || strict.IsNull(action):
		ap.Action = securityv1beta1.AuthorizationPolicy_ALLOW
	case action.Kind == yaml.ScalarNode && strings.EqualFold(action.Value, "ALLOW"):
		ap.Action = securityv1beta1.AuthorizationPolicy_ALLOW
	case action.Kind == yaml.ScalarNode && strings.EqualFold(action.Value, "AUDIT"):
		ap.Action = securityv1beta1.AuthorizationPolicy_AUDIT
	}
	if selector != nil && !strict.IsNull(selector) {
		ws := &typev1beta1.WorkloadSelector{}
		if len(strict.Decode(selector, ws, "spec.selector")) == 0 {
			ap.Selector = ws
		} else {
			selectorLost = true
		}
	}
	return ap, selectorLost
}
