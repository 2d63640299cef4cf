package gateway

import (
	"fmt"

	"github.com/egressd/egressd/serviceentry/vocab"
)

// routes plans the HTTP route table of a port: a virtual host for each
// host that needs one of its own, then the catch-all. Under REGISTRY_ONLY
// the catch-all finds listed hosts by Host (VHostByHost); under ALLOW_ANY
// and AUDIT it forwards every other Host (VHostUnlisted).
func (p *planner) routes(ph *portHosts) *Routes {
	n := ph.number
	r := &Routes{Name: vocab.RouteName(n), Port: n, ByHost: !p.o.Outbound.Forwards()}
	wild := wildcards(ph.http)
	for _, hp := range ph.http {
		name := hp.host.Name
		vh := &VirtualHost{
			Name:    fmt.Sprintf("%s:%d", name, n),
			Domains: []string{name, fmt.Sprintf("%s:%d", name, n)},
			Host:    name,
			Kind:    VHostCluster,
			Route:   "allow",
			Verdict: vocab.VerdictAllow,
			Reason:  vocab.ReasonAllowed,
		}
		switch {
		case hp.hp.Route != nil:
			// A VirtualService sends it elsewhere: to the destination's
			// cluster, with the TLS its DestinationRule originates.
			r := hp.hp.Route
			if originationBlocked(hp.hp.Target()) {
				vh.Kind, vh.Route = VHostBlocked, "tls_origination_unavailable"
				vh.Verdict, vh.Reason, vh.ServiceEntry = vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed, r.Entry.Ref.String()
				vh.Blocked = &Blocked{Rule: r.TLS.Rule.String(), Unsupported: r.TLS.Unsupported}
				break
			}
			t := hp.target()
			vh.Cluster = p.hostCluster(t.host.Name, t.hp)
			vh.VirtualService = r.VirtualService.String()
			vh.Timeout = r.Timeout
			vh.Retries = r.Retries
		case originationBlocked(hp.hp):
			// 502 with the reason, never the request in clear.
			vh.Kind, vh.Route = VHostBlocked, "tls_origination_unavailable"
			vh.Verdict, vh.Reason, vh.ServiceEntry = vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed, hp.hp.Entry.Ref.String()
			vh.Blocked = &Blocked{Rule: hp.hp.TLS.Rule.String(), Unsupported: hp.hp.TLS.Unsupported}
		case dynamic(hp):
			r.Dynamic = true
			vh.Cluster = p.add(dynamicCluster(DynamicHTTPCluster, hp.hp.Protocol.UpstreamHTTP2()))
			vh.ServiceEntry = hp.hp.Entry.Ref.String()
			if addrs := hp.hp.Entry.Addresses; len(addrs) > 0 {
				vh.Guard, vh.GuardAllows = GuardListed, addrs
			}
		case p.foundByName(hp, wild):
			p.hostCluster(name, hp.hp)
			continue
		default:
			// The entry's name comes from the cluster's metadata.
			vh.Cluster = p.hostCluster(name, hp.hp)
		}
		r.VirtualHosts = append(r.VirtualHosts, vh)
	}
	if r.ByHost {
		r.VirtualHosts = append(r.VirtualHosts, &VirtualHost{
			Name: "by_host", Domains: []string{"*"}, Kind: VHostByHost, Route: "by_host",
			Verdict: vocab.VerdictAllow, Reason: vocab.ReasonAllowed,
		})
	} else {
		verdict, reason := p.unlistedVerdict()
		r.Dynamic = true
		r.VirtualHosts = append(r.VirtualHosts, &VirtualHost{
			Name: "unlisted", Domains: []string{"*"}, Kind: VHostUnlisted, Route: "unlisted",
			Cluster: p.add(dynamicCluster(DynamicHTTPCluster, false)), Verdict: verdict, Reason: reason,
		})
	}
	if r.Dynamic {
		// The address guard runs after the forward proxy filter: routes
		// that resolve nothing per request skip it (their clusters'
		// endpoints are the entry's).
		for _, vh := range r.VirtualHosts {
			if vh.Guard == GuardDefault && !isDynamicHTTP(vh.Cluster) {
				vh.Guard = GuardOff
			}
		}
	}
	return r
}

func isDynamicHTTP(cluster string) bool {
	return cluster == DynamicHTTPCluster || cluster == DynamicHTTP2Cluster
}
