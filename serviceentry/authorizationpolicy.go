package serviceentry

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/egressd/egressd/serviceentry/strict"
)

// AuthzAction is an AuthorizationPolicy's action, as Istio names it.
type AuthzAction string

// The AuthorizationPolicy actions egressd enforces. Istio's CUSTOM
// (external authorization) is not supported.
const (
	// AuthzAllow: a request is allowed only if some ALLOW policy matches
	// it (once any ALLOW policy applies at all).
	AuthzAllow AuthzAction = "ALLOW"
	// AuthzDeny: a request that any DENY policy matches is denied, before
	// ALLOW policies are looked at.
	AuthzDeny AuthzAction = "DENY"
	// AuthzAudit: a request that any AUDIT policy matches is marked for
	// the access log; it is neither allowed nor denied by it.
	AuthzAudit AuthzAction = "AUDIT"
	// AuthzShadowDeny is egressd's own, never read from a resource: a
	// DENY that is only recorded (Envoy's shadow rules), for a dry run.
	AuthzShadowDeny AuthzAction = "SHADOW_DENY"
)

// AuthorizationPolicy is one Istio AuthorizationPolicy that passed
// validation. Its rules say which requests (or, on plain TCP, connections)
// its action applies to.
type AuthorizationPolicy struct {
	Ref    Ref         `json:"ref"`
	Action AuthzAction `json:"action"`
	// Selector is spec.selector.matchLabels: the policy applies to a
	// workload (for egressd, its gateway) whose labels include all of
	// them. Empty selects every workload.
	Selector map[string]string `json:"selector,omitempty"`
	// Rules are OR-ed: a request matches the policy if it matches any
	// rule. No rules match nothing, so an ALLOW policy without rules allows
	// nothing (Istio's "deny all" idiom). A rule without from, to and when
	// matches everything.
	Rules []AuthzRule `json:"rules,omitempty"`
	// Invalid, when not empty, marks a policy that failed validation and
	// is kept in a fail-closed form (see ParseConfig): an ALLOW policy
	// without rules, or a DENY policy with one rule that matches
	// everything. It says why.
	Invalid string `json:"invalid,omitempty"`
}

// AuthzRule is one rule of an AuthorizationPolicy. From, To and When are
// AND-ed; within From and To the items are OR-ed; every When condition must
// hold. An empty From, To or When places no constraint.
type AuthzRule struct {
	From []AuthzSource    `json:"from,omitempty"`
	To   []AuthzOperation `json:"to,omitempty"`
	When []AuthzCondition `json:"when,omitempty"`
}

// AuthzSource is one rule.from[].source: who sends the request. The fields
// that are set are AND-ed; the values of one field are OR-ed; a Not field
// matches when none of its values does.
type AuthzSource struct {
	// Principals are peer identities as Istio writes them, without
	// "spiffe://": "cluster.local/ns/default/sa/sleep". A "*" may stand for
	// a prefix or a suffix; "*" alone is any authenticated peer.
	Principals    []string `json:"principals,omitempty"`
	NotPrincipals []string `json:"notPrincipals,omitempty"`
	// Namespaces are the namespaces of peer identities, with the same "*"
	// forms.
	Namespaces    []string `json:"namespaces,omitempty"`
	NotNamespaces []string `json:"notNamespaces,omitempty"`
	// IPBlocks are IP addresses and CIDR ranges of the connection's source,
	// in canonical form ("192.0.2.0/24", "2001:db8::1").
	IPBlocks    []string `json:"ipBlocks,omitempty"`
	NotIPBlocks []string `json:"notIpBlocks,omitempty"`
}

// AuthzOperation is one rule.to[].operation: what the request asks for.
// Combined as AuthzSource's fields are. Methods and paths exist only in
// HTTP; hosts are the HTTP Host (authority) and, on TLS, the SNI.
type AuthzOperation struct {
	// Hosts are lower-case host names, exact or with a leading "*"
	// ("*.example.com", "*example.com") for a suffix match.
	Hosts    []string `json:"hosts,omitempty"`
	NotHosts []string `json:"notHosts,omitempty"`
	// Ports are destination port numbers, as decimal strings.
	Ports    []string `json:"ports,omitempty"`
	NotPorts []string `json:"notPorts,omitempty"`
	// Methods are HTTP methods ("GET"), or "*" for any.
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	// Paths are URL paths without query: exact ("/api"), prefix
	// ("/api/*"), suffix ("*.png") or "*" for any.
	Paths    []string `json:"paths,omitempty"`
	NotPaths []string `json:"notPaths,omitempty"`
}

// AuthzCondition is one rule.when[] condition: the attribute named by Key
// must have one of Values (if any) and none of NotValues.
type AuthzCondition struct {
	// Key is one of the AuthzKey* attributes, or "request.headers[<name>]"
	// with the header name in lower case.
	Key       string   `json:"key"`
	Values    []string `json:"values,omitempty"`
	NotValues []string `json:"notValues,omitempty"`
}

// The condition keys (rule.when[].key) egressd supports, besides
// "request.headers[<name>]" (see AuthzHeaderKey).
const (
	AuthzKeySNI             = "connection.sni"
	AuthzKeySourceIP        = "source.ip"
	AuthzKeySourceNamespace = "source.namespace"
	AuthzKeySourcePrincipal = "source.principal"
	AuthzKeyDestinationPort = "destination.port"
)

// authzKeyList names the supported keys, for messages.
const authzKeyList = "connection.sni, source.ip, source.namespace, source.principal, destination.port, request.headers[<name>]"

// AuthzHeaderKey returns the header name of a "request.headers[<name>]"
// condition key.
func AuthzHeaderKey(key string) (name string, ok bool) {
	rest, ok := strings.CutPrefix(key, "request.headers[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", false
	}
	return rest[:len(rest)-1], true
}

// Selects reports whether the policy applies to a workload with the given
// labels: its selector is empty, or every selector label is among them.
func (p *AuthorizationPolicy) Selects(labels map[string]string) bool {
	return selects(p.Selector, labels)
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ValidateAuthorizationPolicy checks one decoded AuthorizationPolicy with
// Istio's rules and egressd's limits. It returns the normalised policy, or
// nil when the resource has any SeverityError, plus every problem found.
// Warnings keep the policy. Every Problem carries o.Ref.
//
// egressd refuses what it cannot enforce rather than ignore it: action
// CUSTOM and spec.provider, spec.targetRef(s), request principals (JWT),
// remote IP blocks, service accounts, trust domains, and condition keys
// other than authzKeyList's.
func ValidateAuthorizationPolicy(o Object) (*AuthorizationPolicy, []Problem) {
	v := &validator{ref: o.Ref}
	ap := o.AuthorizationPolicy
	if ap == nil {
		v.errorf("spec", "missing; an AuthorizationPolicy needs a spec (spec: {} allows nothing)")
		return nil, v.problems
	}
	p := &AuthorizationPolicy{Ref: o.Ref}
	p.Selector = v.selector("spec.selector", ap.GetSelector())
	if ap.GetTargetRef() != nil || len(ap.GetTargetRefs()) > 0 {
		field := "spec.targetRef"
		if ap.GetTargetRef() == nil {
			field = "spec.targetRefs"
		}
		v.errorf(field, "not supported by egressd, which applies policies to its gateway by label; use spec.selector.matchLabels, or no selector")
	}
	p.Action = v.authzAction(ap)
	for i, r := range ap.GetRules() {
		field := fmt.Sprintf("spec.rules[%d]", i)
		if r == nil {
			v.errorf(field, "empty rule; remove it, or write {} for a rule that matches everything")
			continue
		}
		p.Rules = append(p.Rules, v.authzRule(field, r))
	}
	if len(ap.GetRules()) == 0 && (p.Action == AuthzDeny || p.Action == AuthzAudit) {
		v.warnf("spec.rules", "none: a %s policy without rules matches nothing, so it has no effect; to %s every request, write rules: [{}]", p.Action, strings.ToLower(string(p.Action)))
	}
	if hasError(v.problems) {
		return nil, v.problems
	}
	return p, v.problems
}

// selector checks spec.selector and returns its labels (nil when empty).
func (v *validator) selector(field string, ws *typev1beta1.WorkloadSelector) map[string]string {
	labels := ws.GetMatchLabels()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		lfield := fmt.Sprintf("%s.matchLabels[%s]", field, k)
		if !isQualifiedName(k) {
			v.errorf(lfield, "%q is not a valid label key: use an optional DNS prefix and \"/\", then at most 63 letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit", k)
		}
		if val := labels[k]; !isLabelValue(val) {
			v.errorf(lfield, "%q is not a valid label value: use at most 63 letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit (wildcards are not supported)", val)
		}
	}
	if len(labels) == 0 {
		return nil
	}
	return maps.Clone(labels)
}

// authzAction maps spec.action and refuses CUSTOM and spec.provider.
func (v *validator) authzAction(ap *securityv1beta1.AuthorizationPolicy) AuthzAction {
	var a AuthzAction
	switch ap.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		a = AuthzAllow
	case securityv1beta1.AuthorizationPolicy_DENY:
		a = AuthzDeny
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		a = AuthzAudit
	case securityv1beta1.AuthorizationPolicy_CUSTOM:
		v.errorf("spec.action", "CUSTOM (external authorization) is not supported by egressd; use ALLOW or DENY")
	default:
		v.errorf("spec.action", "unknown action %d; use one of ALLOW, DENY, AUDIT", int32(ap.GetAction()))
	}
	if ap.GetProvider() != nil {
		v.errorf("spec.provider", "not supported by egressd: a provider names the external authorizer of action CUSTOM, which egressd does not support; remove it")
	}
	return a
}

// authzRule checks one rule.
func (v *validator) authzRule(field string, r *securityv1beta1.Rule) AuthzRule {
	var out AuthzRule
	for i, f := range r.GetFrom() {
		ffield := fmt.Sprintf("%s.from[%d].source", field, i)
		if f.GetSource() == nil {
			v.errorf(ffield, "missing; write from: [{source: {...}}], or remove the item")
			continue
		}
		out.From = append(out.From, v.authzSource(ffield, f.GetSource()))
	}
	for i, t := range r.GetTo() {
		tfield := fmt.Sprintf("%s.to[%d].operation", field, i)
		if t.GetOperation() == nil {
			v.errorf(tfield, "missing; write to: [{operation: {...}}], or remove the item")
			continue
		}
		out.To = append(out.To, v.authzOperation(tfield, t.GetOperation()))
	}
	for i, c := range r.GetWhen() {
		wfield := fmt.Sprintf("%s.when[%d]", field, i)
		if c == nil {
			v.errorf(wfield, "empty condition; remove it")
			continue
		}
		out.When = append(out.When, v.authzCondition(wfield, c))
	}
	return out
}

// authzSource checks one source.
func (v *validator) authzSource(field string, s *securityv1beta1.Source) AuthzSource {
	unsupported := []struct {
		name   string
		values []string
		why    string
	}{
		{"requestPrincipals", s.GetRequestPrincipals(), "request principals come from JWTs (RequestAuthentication), which egressd does not check"},
		{"notRequestPrincipals", s.GetNotRequestPrincipals(), "request principals come from JWTs (RequestAuthentication), which egressd does not check"},
		{"remoteIpBlocks", s.GetRemoteIpBlocks(), "egressd does not trust X-Forwarded-For or PROXY protocol addresses; use ipBlocks (the connection's source)"},
		{"notRemoteIpBlocks", s.GetNotRemoteIpBlocks(), "egressd does not trust X-Forwarded-For or PROXY protocol addresses; use notIpBlocks (the connection's source)"},
		{"serviceAccounts", s.GetServiceAccounts(), `use principals, e.g. "cluster.local/ns/<namespace>/sa/<account>" (or "*/ns/<namespace>/sa/<account>" for any trust domain)`},
		{"notServiceAccounts", s.GetNotServiceAccounts(), `use notPrincipals, e.g. "*/ns/<namespace>/sa/<account>"`},
		{"trustDomains", s.GetTrustDomains(), `use principals, e.g. "example.org/*"`},
		{"notTrustDomains", s.GetNotTrustDomains(), `use notPrincipals, e.g. "example.org/*"`},
	}
	for _, u := range unsupported {
		if len(u.values) > 0 {
			v.errorf(field+"."+u.name, "not supported by egressd: %s", u.why)
		}
	}
	out := AuthzSource{
		Principals:    v.values(field+".principals", s.GetPrincipals(), checkPrincipal),
		NotPrincipals: v.values(field+".notPrincipals", s.GetNotPrincipals(), checkPrincipal),
		Namespaces:    v.values(field+".namespaces", s.GetNamespaces(), checkNamespace),
		NotNamespaces: v.values(field+".notNamespaces", s.GetNotNamespaces(), checkNamespace),
		IPBlocks:      v.values(field+".ipBlocks", s.GetIpBlocks(), checkIPBlock),
		NotIPBlocks:   v.values(field+".notIpBlocks", s.GetNotIpBlocks(), checkIPBlock),
	}
	if len(setFieldsExcept(s)) == 0 {
		v.errorf(field, "empty: a source needs at least one field (Istio requires it); remove the from item to match any source")
	}
	return out
}

// authzOperation checks one operation.
func (v *validator) authzOperation(field string, op *securityv1beta1.Operation) AuthzOperation {
	out := AuthzOperation{
		Hosts:      v.values(field+".hosts", op.GetHosts(), checkAuthzHost),
		NotHosts:   v.values(field+".notHosts", op.GetNotHosts(), checkAuthzHost),
		Ports:      v.values(field+".ports", op.GetPorts(), checkPortString),
		NotPorts:   v.values(field+".notPorts", op.GetNotPorts(), checkPortString),
		Methods:    v.values(field+".methods", op.GetMethods(), checkMethod),
		NotMethods: v.values(field+".notMethods", op.GetNotMethods(), checkMethod),
		Paths:      v.values(field+".paths", op.GetPaths(), checkPath),
		NotPaths:   v.values(field+".notPaths", op.GetNotPaths(), checkPath),
	}
	if len(setFieldsExcept(op)) == 0 {
		v.errorf(field, "empty: an operation needs at least one field (Istio requires it); remove the to item to match any operation")
	}
	return out
}

// authzCondition checks one when condition: a supported key and values of
// the key's kind.
func (v *validator) authzCondition(field string, c *securityv1beta1.Condition) AuthzCondition {
	key := c.GetKey()
	var check func(string) (string, error)
	switch key {
	case AuthzKeySNI:
		check = checkAuthzHost
	case AuthzKeySourceIP:
		check = checkIPBlock
	case AuthzKeySourceNamespace:
		check = checkNamespace
	case AuthzKeySourcePrincipal:
		check = checkPrincipal
	case AuthzKeyDestinationPort:
		check = checkPortString
	case "":
		v.errorf(field+".key", "missing; use one of %s", authzKeyList)
		return AuthzCondition{}
	default:
		name, ok := AuthzHeaderKey(key)
		if !ok {
			v.errorf(field+".key", "%q %s", key, unsupportedKey(key))
			return AuthzCondition{}
		}
		if err := checkHeaderName(name); err != nil {
			v.errorf(field+".key", "%v", err)
			return AuthzCondition{}
		}
		key = "request.headers[" + strings.ToLower(name) + "]"
		check = checkHeaderValue
	}
	out := AuthzCondition{
		Key:       key,
		Values:    v.values(field+".values", c.GetValues(), check),
		NotValues: v.values(field+".notValues", c.GetNotValues(), check),
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		v.errorf(field, "condition on %s has neither values nor notValues; set one (Istio requires it), or remove the condition", key)
	}
	return out
}

// unsupportedKey explains why a condition key is refused.
func unsupportedKey(key string) string {
	switch {
	case strings.HasPrefix(key, "request.auth."):
		return "needs request authentication (JWT), which egressd does not check; use one of " + authzKeyList
	case key == "remote.ip":
		return "is not supported: egressd does not trust X-Forwarded-For or PROXY protocol addresses; use source.ip"
	case key == "destination.ip":
		return "is not supported by egressd; match the destination by host (rule.to.operation.hosts) or by connection.sni"
	case strings.HasPrefix(key, "request.headers"):
		return "is not a header condition; write request.headers[<name>], e.g. request.headers[user-agent]"
	}
	known := []string{AuthzKeySNI, AuthzKeySourceIP, AuthzKeySourceNamespace, AuthzKeySourcePrincipal, AuthzKeyDestinationPort}
	if s := strict.Closest(key, known); s != "" {
		return fmt.Sprintf("is not a key egressd supports; did you mean %q?", s)
	}
	return "is not a key egressd supports; use one of " + authzKeyList
}

// valueWarning is an error of a value check that keeps the value: it
// becomes a warning.
type valueWarning struct{ msg string }

func (w *valueWarning) Error() string { return w.msg }

// values checks and normalises every value of one field with check, which
// returns the value to keep, or an error (a *valueWarning keeps the value).
// Empty values are refused.
func (v *validator) values(field string, raw []string, check func(string) (string, error)) []string {
	var out []string
	for i, s := range raw {
		ifield := fmt.Sprintf("%s[%d]", field, i)
		if s == "" {
			v.errorf(ifield, "empty value; remove it")
			continue
		}
		n, err := check(s)
		var w *valueWarning
		switch {
		case errors.As(err, &w):
			v.warnf(ifield, "%s", w.msg)
		case err != nil:
			v.errorf(ifield, "%v", err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// checkWildcard applies Istio's rule for "*" in string values: at most
// one, and only as the whole value, a prefix or a suffix.
func checkWildcard(s string) error {
	switch n := strings.Count(s, "*"); {
	case n == 0:
		return nil
	case n > 1:
		return fmt.Errorf(`%q has %d "*"; use at most one, as a prefix ("*x") or a suffix ("x*")`, s, n)
	case !strings.HasPrefix(s, "*") && !strings.HasSuffix(s, "*"):
		return fmt.Errorf(`%q has a "*" in the middle; a "*" may only stand for a prefix ("*x") or a suffix ("x*")`, s)
	}
	return nil
}

// checkPrincipal checks a peer identity: "trust-domain/ns/<ns>/sa/<sa>",
// without "spiffe://", with Istio's "*" forms.
func checkPrincipal(s string) (string, error) {
	if strings.HasPrefix(s, "spiffe://") {
		return "", fmt.Errorf("%q starts with \"spiffe://\"; Istio writes principals without it: %q", s, strings.TrimPrefix(s, "spiffe://"))
	}
	if strings.ContainsFunc(s, isSpaceOrControl) {
		return "", fmt.Errorf("%q contains a space or control character; remove it", s)
	}
	return s, checkWildcard(s)
}

// checkNamespace checks a namespace with Istio's "*" forms: the rest must
// be (part of) a namespace name.
func checkNamespace(s string) (string, error) {
	if err := checkWildcard(s); err != nil {
		return "", err
	}
	bare := strings.ReplaceAll(s, "*", "")
	for i := 0; i < len(bare); i++ {
		c := bare[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", fmt.Errorf("%q is not a namespace: a namespace has lower-case letters, digits and \"-\" only (with one \"*\" as a prefix or suffix)", s)
		}
	}
	if !strings.Contains(s, "*") && !IsDNS1123Label(s) {
		return "", fmt.Errorf("%q is not a valid namespace: use at most 63 lower-case letters, digits and \"-\", starting and ending with a letter or digit", s)
	}
	return s, nil
}

// checkIPBlock checks an IP address or CIDR range and returns it in
// canonical form. A range with host bits set gets a warning and is masked.
func checkIPBlock(s string) (string, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", fmt.Errorf("%q is not a valid CIDR range; write it as an IP address and prefix length, e.g. \"192.0.2.0/24\"", s)
		}
		if m := p.Masked(); m != p {
			return m.String(), &valueWarning{fmt.Sprintf("%q has bits set after the prefix length; it means %s: write that", s, m)}
		}
		return p.String(), nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not an IP address or CIDR range, e.g. \"192.0.2.10\" or \"192.0.2.0/24\"", s)
	case a.Zone() != "":
		return "", fmt.Errorf("%q has an IPv6 zone; remove %q", s, "%"+a.Zone())
	}
	return a.String(), nil
}

// checkPortString checks a port number written as a string.
func checkPortString(s string) (string, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return "", fmt.Errorf("%q is not a port number; write a number from 1 to 65535 (ranges and names are not supported)", s)
	}
	if n == 0 || n > 65535 {
		return "", fmt.Errorf("%d is out of range; use 1-65535", n)
	}
	return strconv.FormatUint(n, 10), nil
}

// standardMethods are the HTTP methods of RFC 9110 and PATCH (RFC 5789).
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// checkMethod checks an HTTP method: an upper-case token, or "*" for any.
// A method outside standardMethods gets a warning.
func checkMethod(s string) (string, error) {
	if s == "*" {
		return s, nil
	}
	if !isToken(s) || strings.Contains(s, "*") {
		return "", fmt.Errorf("%q is not an HTTP method; use an upper-case method such as GET or POST, or \"*\" for any", s)
	}
	if up := strings.ToUpper(s); up != s {
		return "", fmt.Errorf("%q: methods are case-sensitive and written in upper case: write %q", s, up)
	}
	if !slices.Contains(standardMethods, s) {
		return s, &valueWarning{fmt.Sprintf("%q is not a standard HTTP method (%s); check the spelling", s, strings.Join(standardMethods, ", "))}
	}
	return s, nil
}

// checkPath checks a URL path: exact ("/a"), prefix ("/a/*"), suffix
// ("*.png") or "*".
func checkPath(s string) (string, error) {
	if strings.Contains(s, "{*}") || strings.Contains(s, "{**}") {
		return "", fmt.Errorf("%q uses a path template, which egressd does not support; use a prefix (\"/a/*\") or suffix (\"*.png\") match", s)
	}
	if strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("%q contains a query or fragment; paths are matched without them: remove everything from %q", s, s[strings.IndexAny(s, "?#"):])
	}
	if strings.ContainsFunc(s, isSpaceOrControl) {
		return "", fmt.Errorf("%q contains a space or control character; write it percent-encoded as sent", s)
	}
	if err := checkWildcard(s); err != nil {
		return "", err
	}
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "*") {
		return "", fmt.Errorf("%q does not start with \"/\"; write the path as sent, e.g. %q, or a suffix match such as \"*.png\"", s, "/"+s)
	}
	return s, nil
}

// checkAuthzHost checks a host of an operation or a connection.sni value:
// a host name, exact or with a leading "*" for a suffix match. It returns
// the name in lower case and Punycode.
func checkAuthzHost(s string) (string, error) {
	name := strings.TrimSuffix(s, ".")
	switch {
	case name == "*":
		return "", fmt.Errorf(`"*" matches every host; remove the field to match any host`)
	case isIPAddress(name):
		return "", fmt.Errorf("%q is an IP address; hosts are matched by name (HTTP Host or TLS SNI): name the host", s)
	case strings.Contains(s, "://") || strings.Contains(s, "/"):
		return "", fmt.Errorf("%q is not a host name; write only the host, without scheme or path", s)
	case strings.Contains(s, ":"):
		return "", fmt.Errorf("%q contains a port; write only the host name (it matches on every port), and restrict ports with ports", s)
	}
	rest, suffixMatch := strings.CutPrefix(name, "*")
	if strings.Contains(rest, "*") {
		return "", fmt.Errorf(`%q has a "*" that is not at the start; hosts allow only a leading "*" for a suffix match, as in "*.example.com" or "*example.com"`, s)
	}
	if !suffixMatch || strings.HasPrefix(rest, ".") {
		// An exact name, or "*.example.com", as ServiceEntry hosts have them.
		return NormalizeHost(s)
	}
	// "*example.com" matches any name ending in "example.com": check the
	// rest as the end of a host name.
	if !isASCII(rest) {
		return "", fmt.Errorf("%q: write an internationalised name after \"*\" in Punycode", s)
	}
	n, err := NormalizeHost("x" + rest)
	if err != nil {
		msg := strings.Replace(err.Error(), strconv.Quote("x"+rest), strconv.Quote(s), 1)
		return "", fmt.Errorf("%q is not a host name suffix: %s", s, strings.TrimPrefix(msg, strconv.Quote(s)+" "))
	}
	return "*" + n[1:], nil
}

// checkHeaderName checks the name of a request.headers[<name>] key.
func checkHeaderName(name string) error {
	bare := strings.TrimPrefix(name, ":")
	if !isToken(bare) {
		return fmt.Errorf("request.headers[%s]: %q is not a valid header name; use letters, digits and \"-\", e.g. request.headers[x-team]", name, name)
	}
	return nil
}

// checkHeaderValue checks a header value with Istio's "*" forms.
func checkHeaderValue(s string) (string, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return "", fmt.Errorf("%q contains a control character; remove it", s)
	}
	return s, checkWildcard(s)
}

// isToken reports whether s is an HTTP token (RFC 9110, 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}
