package authz

import (
	"strings"

	"github.com/egressd/egressd/serviceentry"
)

// ForHost returns the policies as they apply to traffic for one known
// host: operation hosts and notHosts are decided now, against host, and
// removed. The mesh listener needs this for TLS passed through inside the
// mesh TLS, where the only server name Envoy sees is the mesh one
// ("outbound_.443_._.<host>"), not the host. An operation that cannot match
// host is dropped, and a rule left without operations (it had some) is
// dropped, so it can never widen into "any operation".
func ForHost(policies []*serviceentry.AuthorizationPolicy, host string) []*serviceentry.AuthorizationPolicy {
	out := make([]*serviceentry.AuthorizationPolicy, 0, len(policies))
	for _, p := range policies {
		q := *p
		q.Rules = nil
		for _, r := range p.Rules {
			if len(r.To) == 0 {
				q.Rules = append(q.Rules, r)
				continue
			}
			var to []serviceentry.AuthzOperation
			for _, op := range r.To {
				if len(op.Hosts) > 0 && !hostMatchesAny(host, op.Hosts) {
					continue
				}
				if hostMatchesAny(host, op.NotHosts) {
					continue
				}
				op.Hosts, op.NotHosts = nil, nil
				to = append(to, op)
			}
			if len(to) == 0 {
				continue
			}
			r.To = to
			q.Rules = append(q.Rules, r)
		}
		out = append(out, &q)
	}
	return out
}

// hostMatchesAny reports whether host matches one of the policy's host
// values: exact (ignoring case), or "*suffix" ("*.example.com").
func hostMatchesAny(host string, values []string) bool {
	host = strings.ToLower(host)
	for _, v := range values {
		v = strings.ToLower(v)
		switch {
		case v == host:
			return true
		case strings.HasPrefix(v, "*") && strings.HasSuffix(host, v[1:]) && len(host) > len(v)-1:
			return true
		}
	}
	return false
}
