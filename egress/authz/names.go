package authz

import (
	"strconv"
	"strings"

	"github.com/egressd/egressd/serviceentry"
)

// PolicyName names the Envoy RBAC policy of rule index rule of the
// AuthorizationPolicy ref: "<namespace>/<name>#<rule>". Envoy reports the
// name of a denying policy in the response code details, so a denial can
// be traced back to its AuthorizationPolicy with ParsePolicyName.
func PolicyName(ref serviceentry.Ref, rule int) string {
	return ref.Namespace + "/" + ref.Name + "#" + strconv.Itoa(rule)
}

// ParsePolicyName splits a name made by PolicyName: "ns/name#2" gives
// "ns/name" and 2. ok is false for anything PolicyName cannot return.
func ParsePolicyName(s string) (ref string, rule int, ok bool) {
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return "", 0, false
	}
	ref, num := s[:i], s[i+1:]
	ns, name, found := strings.Cut(ref, "/")
	if !found || ns == "" || name == "" || strings.ContainsAny(name, "/#") {
		return "", 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return "", 0, false
	}
	return ref, n, true
}
