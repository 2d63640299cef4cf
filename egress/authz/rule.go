package authz

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/serviceentry"
)

// spiffePrefix is the scheme Istio adds to principals: a peer's identity is
// the URI SAN "spiffe://<trust domain>/ns/<namespace>/sa/<account>".
const spiffePrefix = "spiffe://"

// rulePolicy builds the Envoy policy of one rule of a policy with action a
// at layer l. ok is false when the rule can match nothing there: an ALLOW
// rule on TCP that needs HTTP attributes.
func rulePolicy(r serviceentry.AuthzRule, a serviceentry.AuthzAction, l layer) (*rbacv3.Policy, bool) {
	// On TCP, HTTP attributes are never seen: an ALLOW rule that needs
	// them cannot match, and DENY and AUDIT rules match without them.
	strict := l == layerNetwork && a == serviceentry.AuthzAllow
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal

	if len(r.From) > 0 {
		var from []*rbacv3.Principal
		for _, s := range r.From {
			from = append(from, sourcePrincipal(s))
		}
		ids = append(ids, orIDs(from))
	}
	if len(r.To) > 0 {
		var to []*rbacv3.Permission
		for _, op := range r.To {
			if l == layerNetwork && needsHTTP(op) {
				if strict {
					continue
				}
				op = withoutHTTP(op)
			}
			to = append(to, operationPermission(op, l))
		}
		if len(to) == 0 {
			return nil, false
		}
		perms = append(perms, orRules(to))
	}
	for _, c := range r.When {
		if _, header := serviceentry.AuthzHeaderKey(c.Key); header && l == layerNetwork {
			if strict {
				return nil, false
			}
			continue
		}
		perm, id := condition(c)
		if perm != nil {
			perms = append(perms, perm)
		}
		if id != nil {
			ids = append(ids, id)
		}
	}
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{andRules(perms)},
		Principals:  []*rbacv3.Principal{andIDs(ids)},
	}, true
}

// needsHTTP reports whether op has fields only HTTP carries.
func needsHTTP(op serviceentry.AuthzOperation) bool {
	return len(op.Methods) > 0 || len(op.NotMethods) > 0 || len(op.Paths) > 0 || len(op.NotPaths) > 0
}

// withoutHTTP returns op without the fields only HTTP carries.
func withoutHTTP(op serviceentry.AuthzOperation) serviceentry.AuthzOperation {
	op.Methods, op.NotMethods, op.Paths, op.NotPaths = nil, nil, nil, nil
	return op
}

// sourcePrincipal matches one rule.from[].source.
func sourcePrincipal(s serviceentry.AuthzSource) *rbacv3.Principal {
	var and []*rbacv3.Principal
	field := func(values []string, negate bool, one func(string) *rbacv3.Principal) {
		if len(values) == 0 {
			return
		}
		var or []*rbacv3.Principal
		for _, v := range values {
			or = append(or, one(v))
		}
		p := orIDs(or)
		if negate {
			p = notID(p)
		}
		and = append(and, p)
	}
	field(s.Principals, false, principalID)
	field(s.NotPrincipals, true, principalID)
	field(s.Namespaces, false, namespaceID)
	field(s.NotNamespaces, true, namespaceID)
	field(s.IPBlocks, false, ipID)
	field(s.NotIPBlocks, true, ipID)
	return andIDs(and)
}

// operationPermission matches one rule.to[].operation at layer l.
func operationPermission(op serviceentry.AuthzOperation, l layer) *rbacv3.Permission {
	var and []*rbacv3.Permission
	field := func(values []string, negate bool, one func(string) *rbacv3.Permission) {
		if len(values) == 0 {
			return
		}
		var or []*rbacv3.Permission
		for _, v := range values {
			or = append(or, one(v))
		}
		p := orRules(or)
		if negate {
			p = notRule(p)
		}
		and = append(and, p)
	}
	host := authorityPermission
	if l == layerNetwork {
		host = sniPermission
	}
	field(op.Hosts, false, host)
	field(op.NotHosts, true, host)
	field(op.Ports, false, portPermission)
	field(op.NotPorts, true, portPermission)
	field(op.Methods, false, methodPermission)
	field(op.NotMethods, true, methodPermission)
	field(op.Paths, false, pathPermission)
	field(op.NotPaths, true, pathPermission)
	return andRules(and)
}

// condition matches one rule.when[] condition: a permission for request
// and destination attributes, a principal for source attributes. Exactly
// one of the results is set.
func condition(c serviceentry.AuthzCondition) (*rbacv3.Permission, *rbacv3.Principal) {
	var perm func(string) *rbacv3.Permission
	var id func(string) *rbacv3.Principal
	switch c.Key {
	case serviceentry.AuthzKeySNI:
		perm = sniPermission
	case serviceentry.AuthzKeyDestinationPort:
		perm = portPermission
	case serviceentry.AuthzKeySourceIP:
		id = ipID
	case serviceentry.AuthzKeySourceNamespace:
		id = namespaceID
	case serviceentry.AuthzKeySourcePrincipal:
		id = principalID
	default:
		name, _ := serviceentry.AuthzHeaderKey(c.Key)
		perm = func(v string) *rbacv3.Permission { return headerPermission(name, v) }
	}
	if perm != nil {
		var and []*rbacv3.Permission
		if len(c.Values) > 0 {
			and = append(and, orRules(mapSlice(c.Values, perm)))
		}
		if len(c.NotValues) > 0 {
			and = append(and, notRule(orRules(mapSlice(c.NotValues, perm))))
		}
		return andRules(and), nil
	}
	var and []*rbacv3.Principal
	if len(c.Values) > 0 {
		and = append(and, orIDs(mapSlice(c.Values, id)))
	}
	if len(c.NotValues) > 0 {
		and = append(and, notID(orIDs(mapSlice(c.NotValues, id))))
	}
	return nil, andIDs(and)
}

func mapSlice[T any](values []string, f func(string) T) []T {
	out := make([]T, 0, len(values))
	for _, v := range values {
		out = append(out, f(v))
	}
	return out
}

// principalID matches a principal as Istio writes it: "td/ns/a/sa/b"
// exactly (with "spiffe://" added), "td/ns/a/*" by prefix, "*/sa/b" by
// suffix, "*" any non-empty authenticated principal.
func principalID(v string) *rbacv3.Principal {
	var m *matcherv3.StringMatcher
	switch {
	case v == "*":
		m = regexMatcher(".+")
	case strings.HasPrefix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: spiffePrefix + v[:len(v)-1]}}
	default:
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: spiffePrefix + v}}
	}
	return authenticated(m)
}

// namespaceID matches the namespace of the peer's principal:
// ".*/ns/<namespace>/.*", with "[^/]*" for a "*" prefix or suffix.
func namespaceID(v string) *rbacv3.Principal {
	var ns string
	switch {
	case v == "*":
		ns = "[^/]+"
	case strings.HasPrefix(v, "*"):
		ns = "[^/]*" + regexp.QuoteMeta(v[1:])
	case strings.HasSuffix(v, "*"):
		ns = regexp.QuoteMeta(v[:len(v)-1]) + "[^/]*"
	default:
		ns = regexp.QuoteMeta(v)
	}
	return authenticated(regexMatcher(".*/ns/" + ns + "/.*"))
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
		Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m},
	}}
}

// ipID matches the connection's source address (the peer that connected to
// the gateway; X-Forwarded-For is not trusted) against an address or range
// as serviceentry normalised it.
func ipID(v string) *rbacv3.Principal {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil {
			// serviceentry validated the value; an invalid one matches
			// nothing.
			return notID(anyID())
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
		AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits())),
	}}}
}

// authorityPermission matches an HTTP host against the :authority header,
// ignoring case, with or without a ":port".
func authorityPermission(h string) *rbacv3.Permission {
	if suffix, ok := strings.CutPrefix(h, "*"); ok {
		return orRules([]*rbacv3.Permission{
			headerMatch(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: suffix}, IgnoreCase: true}),
			headerMatch(":authority", regexMatcher("(?i).*"+regexp.QuoteMeta(suffix)+":[0-9]+")),
		})
	}
	return orRules([]*rbacv3.Permission{
		headerMatch(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}, IgnoreCase: true}),
		headerMatch(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h + ":"}, IgnoreCase: true}),
	})
}

// sniPermission matches a host against the TLS SNI, ignoring case.
func sniPermission(h string) *rbacv3.Permission {
	m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}, IgnoreCase: true}
	if suffix, ok := strings.CutPrefix(h, "*"); ok {
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: suffix}, IgnoreCase: true}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: m}}
}

// portPermission matches the destination port.
func portPermission(v string) *rbacv3.Permission {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		// serviceentry validated the value; an invalid one matches nothing.
		return notRule(anyPermission())
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
}

// methodPermission matches the :method header; "*" is any method.
func methodPermission(v string) *rbacv3.Permission {
	if v == "*" {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
		}}}
	}
	return headerMatch(":method", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}})
}

// pathPermission matches the URL path (without query): exact, "/x*" by
// prefix, "*x" by suffix, "*" any.
func pathPermission(v string) *rbacv3.Permission {
	if v == "*" {
		return anyPermission()
	}
	var m *matcherv3.StringMatcher
	switch {
	case strings.HasSuffix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}}
	case strings.HasPrefix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	default:
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: m},
	}}}
}

// headerPermission matches a request header's value: exact, "x*" by
// prefix, "*x" by suffix, "*" present with any value.
func headerPermission(name, v string) *rbacv3.Permission {
	switch {
	case v == "*":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
		}}}
	case strings.HasSuffix(v, "*"):
		return headerMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}})
	case strings.HasPrefix(v, "*"):
		return headerMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}})
	}
	return headerMatch(name, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}})
}

func headerMatch(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
	}}}
}

func regexMatcher(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

func anyID() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

// orRules ORs permissions, flattening nested ORs: any -> any, one -> itself.
func orRules(ps []*rbacv3.Permission) *rbacv3.Permission {
	var flat []*rbacv3.Permission
	for _, p := range ps {
		switch r := p.GetRule().(type) {
		case *rbacv3.Permission_Any:
			if r.Any {
				return p
			}
		case *rbacv3.Permission_OrRules:
			flat = append(flat, r.OrRules.GetRules()...)
			continue
		}
		flat = append(flat, p)
	}
	switch len(flat) {
	case 0:
		return notRule(anyPermission())
	case 1:
		return flat[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: flat}}}
}

// andRules ANDs permissions, flattening nested ANDs and dropping "any":
// none -> any, one -> itself.
func andRules(ps []*rbacv3.Permission) *rbacv3.Permission {
	var flat []*rbacv3.Permission
	for _, p := range ps {
		switch r := p.GetRule().(type) {
		case *rbacv3.Permission_Any:
			if r.Any {
				continue
			}
		case *rbacv3.Permission_AndRules:
			flat = append(flat, r.AndRules.GetRules()...)
			continue
		}
		flat = append(flat, p)
	}
	switch len(flat) {
	case 0:
		return anyPermission()
	case 1:
		return flat[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: flat}}}
}

func notRule(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

// orIDs is orRules for principals.
func orIDs(ps []*rbacv3.Principal) *rbacv3.Principal {
	var flat []*rbacv3.Principal
	for _, p := range ps {
		switch r := p.GetIdentifier().(type) {
		case *rbacv3.Principal_Any:
			if r.Any {
				return p
			}
		case *rbacv3.Principal_OrIds:
			flat = append(flat, r.OrIds.GetIds()...)
			continue
		}
		flat = append(flat, p)
	}
	switch len(flat) {
	case 0:
		return notID(anyID())
	case 1:
		return flat[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: flat}}}
}

// andIDs is andRules for principals.
func andIDs(ps []*rbacv3.Principal) *rbacv3.Principal {
	var flat []*rbacv3.Principal
	for _, p := range ps {
		switch r := p.GetIdentifier().(type) {
		case *rbacv3.Principal_Any:
			if r.Any {
				continue
			}
		case *rbacv3.Principal_AndIds:
			flat = append(flat, r.AndIds.GetIds()...)
			continue
		}
		flat = append(flat, p)
	}
	switch len(flat) {
	case 0:
		return anyID()
	case 1:
		return flat[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: flat}}}
}

func notID(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}
