package serviceentry

import (
	"fmt"
	"sort"
	"strings"
)

// applyRoutes applies the egress routes of VirtualServices (see
// VirtualService) to the host ports: a routed host port keeps being
// allowed, and the gateway connects to the route's destination instead.
// A host the VirtualService names that no ServiceEntry lists is allowed
// on the routed port when the destination is listed: the route is the
// way out, as in Istio's egress gateway tasks (sidecars send the traffic
// to the egress gateway, which routes it). The first VirtualService by
// namespace/name routes a host port; every route not applied is reported.
// exact and wildcard are the DestinationRules by host (applyRules), for
// the TLS to originate to a destination.
func (a *Allowlist) applyRoutes(services []*VirtualService, exact, wildcard map[string]*Rule) {
	if len(services) == 0 {
		return
	}
	sorted := append([]*VirtualService(nil), services...)
	sort.SliceStable(sorted, func(i, j int) bool { return refLess(sorted[i].Ref, sorted[j].Ref) })
	added := false
	routed := map[string]Ref{} // "host|port" -> the VirtualService that routed it
	// classes are the protocol class each port is used for, by any host.
	classes := map[uint32]Class{}
	for _, h := range a.hosts {
		for _, hp := range h.Ports {
			if _, ok := classes[hp.Number]; !ok {
				classes[hp.Number] = hp.Protocol.Class()
			}
		}
	}
	for _, vs := range sorted {
		a.virtualServices = append(a.virtualServices, vs)
		problem := func(field, format string, args ...any) {
			a.problems = append(a.problems, Problem{Ref: vs.Ref, Field: field, Code: CodeRouteIgnored, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)})
		}
		apply := func(r VirtualRoute, host string, number uint32, class Class) {
			port := r.Port
			if port == 0 {
				port = number
			}
			if r.Host == host && port == number {
				return // to itself: nothing to change
			}
			dest, dhp, ok := a.MatchPort(r.Host, port)
			if !ok || dest.Wildcard {
				problem(r.Field, "routes %s port %d to %s port %d, which no ServiceEntry lists; the route is not applied: list %s on port %d", host, number, r.Host, port, r.Host, port)
				return
			}
			if class == ClassTLS && dhp.Protocol.Class() != ClassTLS {
				problem(r.Field, "routes TLS for %s port %d to %s port %d, which its ServiceEntry lists as %s; the route is not applied", host, number, r.Host, port, dhp.Protocol)
				return
			}
			key := fmt.Sprintf("%s|%d", host, number)
			if prev, taken := routed[key]; taken {
				problem(r.Field, "%s port %d is routed by VirtualService %s already; this route is ignored (egressd applies the first by namespace/name)", host, number, prev)
				return
			}
			h := a.Match(host)
			var covering *Host
			if h != nil && h.Name != host {
				// Only a wildcard covers it: the name gets a host of its
				// own, with the wildcard's ports, so only the routed port
				// changes.
				covering, h = h, nil
			}
			var hp *HostPort
			if h != nil {
				for i := range h.Ports {
					if h.Ports[i].Number == number {
						hp = &h.Ports[i]
					}
				}
			}
			if hp != nil && hp.Protocol.Class() != class {
				problem(r.Field, "routes %s for %s port %d, which its ServiceEntry lists as %s; the route is not applied", className(class), host, number, hp.Protocol)
				return
			}
			if hp == nil {
				if other, used := classes[number]; used && other != class {
					problem(r.Field, "would allow %s on port %d, which ServiceEntries use for %s; the route is not applied", host, number, className(other))
					return
				}
				protocol := dhp.Protocol
				if class == ClassHTTP {
					protocol = ProtocolHTTP
				}
				if h == nil {
					h = a.host(host)
					added = true
					if covering != nil {
						for _, cp := range covering.Ports {
							if cp.Number != number {
								h.Ports = append(h.Ports, cp)
							}
						}
					}
				}
				h.Ports = append(h.Ports, HostPort{Port: Port{Number: number, Protocol: protocol, Name: dhp.Name}, Entry: dhp.Entry})
				classes[number] = class
				sort.Slice(h.Ports, func(i, j int) bool { return h.Ports[i].Number < h.Ports[j].Number })
				for i := range h.Ports {
					if h.Ports[i].Number == number {
						hp = &h.Ports[i]
					}
				}
			}
			target := Port{Number: dhp.Number, Protocol: hp.Protocol, Name: dhp.Name, TargetPort: dhp.TargetPort}
			route := &Route{VirtualService: vs.Ref, Field: r.Field, Host: dest.Name, Port: target, Entry: dhp.Entry, Timeout: r.Timeout, Retries: r.Retries}
			if class == ClassHTTP {
				switch {
				case dhp.Protocol.Class() == ClassHTTP:
					route.TLS = dhp.TLS
				default:
					if rule := mostSpecificRule(dest.Name, exact, wildcard); rule != nil {
						route.TLS = a.originate(rule, dest, HostPort{Port: target, Entry: dhp.Entry})
					}
				}
			}
			hp.Route = route
			routed[key] = vs.Ref
		}
		for _, r := range vs.HTTP {
			for _, host := range vs.Hosts {
				if inMesh(host) {
					continue
				}
				if IsWildcard(host) {
					problem(r.Field, "routes the wildcard host %q; egressd routes HTTP of exact hosts only, so this host is not routed", host)
					continue
				}
				for _, n := range a.routePorts(r, host, ClassHTTP) {
					apply(r, host, n, ClassHTTP)
				}
			}
		}
		for _, r := range vs.TLS {
			hosts := r.SNIHosts
			if len(hosts) == 0 {
				hosts = vs.Hosts
			}
			for _, host := range hosts {
				if inMesh(host) {
					continue
				}
				for _, n := range a.routePorts(r, host, ClassTLS) {
					apply(r, host, n, ClassTLS)
				}
			}
		}
	}
	if added {
		a.hosts = a.hosts[:0]
		for _, h := range a.exact {
			a.hosts = append(a.hosts, h)
		}
		for _, h := range a.wildcard {
			a.hosts = append(a.hosts, h)
		}
		sort.Slice(a.hosts, func(i, j int) bool { return a.hosts[i].Name < a.hosts[j].Name })
	}
}

// routePorts are the ports a route applies to for host: its match ports,
// else the host's listed ports of the class, else the destination's port.
func (a *Allowlist) routePorts(r VirtualRoute, host string, class Class) []uint32 {
	if len(r.Ports) > 0 {
		return r.Ports
	}
	var out []uint32
	if h := a.Match(host); h != nil && h.Name == host {
		for _, hp := range h.Ports {
			if hp.Protocol.Class() == class {
				out = append(out, hp.Number)
			}
		}
	}
	if len(out) == 0 && r.Port != 0 {
		out = append(out, r.Port)
	}
	return out
}

func className(c Class) string { return strings.ToUpper(c.String()) }

// VirtualServices returns the VirtualServices compiled in, by
// namespace/name. Callers must not modify it.
func (a *Allowlist) VirtualServices() []*VirtualService { return a.virtualServices }
