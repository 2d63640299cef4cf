package serviceentry

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// KindVirtualService is the kind of Istio VirtualServices.
const KindVirtualService = "VirtualService"

// MeshGateway is the reserved gateway name of the sidecars.
const MeshGateway = "mesh"

// VirtualService is the egress subset of one Istio VirtualService that
// passed validation: the routes that send a listed host's traffic, at the
// egress gateway, to another host or port. The routes of the mesh leg
// (sidecars to the egress gateway: a destination inside the cluster) are
// what egressd always does and are not kept.
type VirtualService struct {
	Ref   Ref      `json:"ref"`
	Hosts []string `json:"hosts"`
	// HTTP routes plain HTTP by Host; TLS and TCP route by SNI on TLS
	// ports (a TCP route of a TLS port: the egress gateway task's form).
	HTTP []VirtualRoute `json:"http,omitempty"`
	TLS  []VirtualRoute `json:"tls,omitempty"`
}

// VirtualRoute is one route of the egress leg.
type VirtualRoute struct {
	// Field is where it is, e.g. "spec.http[1]", for messages.
	Field string `json:"field"`
	// Ports are the ports it matches (match[].port); empty: every port.
	Ports []uint32 `json:"ports,omitempty"`
	// SNIHosts are a TLS route's match[].sniHosts; empty: the VirtualService's hosts.
	SNIHosts []string `json:"sniHosts,omitempty"`
	// Host and Port are where the traffic goes; Port 0 keeps the port.
	Host string `json:"host"`
	Port uint32 `json:"port,omitempty"`
	// Timeout (HTTP) bounds the whole request, 0: none; Retries (HTTP),
	// when set, retries failed requests.
	Timeout time.Duration `json:"timeout,omitempty"`
	Retries *Retries      `json:"retries,omitempty"`
}

// Retries is an HTTP route's retry policy.
type Retries struct {
	Attempts      uint32        `json:"attempts"`
	PerTryTimeout time.Duration `json:"perTryTimeout,omitempty"`
	// RetryOn are Envoy's retry conditions, "" for Istio's default.
	RetryOn string `json:"retryOn,omitempty"`
}

// DefaultRetryOn is Istio's default retry condition.
const DefaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// inMesh reports whether a route destination is a service of the
// cluster (a short name or *.svc.cluster.local): the mesh leg, which
// takes traffic to the egress gateway.
func inMesh(host string) bool {
	return !strings.Contains(host, ".") || strings.HasSuffix(host, "."+ClusterServiceSuffix)
}

// ValidateVirtualService checks one decoded VirtualService and keeps its
// egress leg. It returns nil when the resource has any SeverityError,
// plus every problem found. What egressd does not apply at the gateway
// is a warning naming the field.
func ValidateVirtualService(o Object) (*VirtualService, []Problem) {
	v := &validator{ref: o.Ref}
	vs := o.VirtualService
	if vs == nil {
		v.errorf("spec", "missing; a VirtualService needs a spec with hosts and routes")
		return nil, v.problems
	}
	out := &VirtualService{Ref: o.Ref}
	if len(vs.GetHosts()) == 0 {
		v.errorf("spec.hosts", "missing; list the hosts the routes are for")
	}
	for i, h := range vs.GetHosts() {
		field := fmt.Sprintf("spec.hosts[%d]", i)
		n, err := NormalizeHost(h)
		switch {
		case err != nil:
			v.errorf(field, "%v", err)
		case n == "*":
			v.errorf(field, `"*" matches every host; list the hosts, or use a wildcard such as "*.example.com"`)
		case !strings.Contains(n, "."):
			// A mesh service's short name: not an external host.
			out.Hosts = append(out.Hosts, n+"."+o.Ref.Namespace+"."+ClusterServiceSuffix)
		default:
			out.Hosts = append(out.Hosts, n)
		}
	}
	for i, r := range vs.GetHttp() {
		if route, ok := v.httpRoute(fmt.Sprintf("spec.http[%d]", i), r); ok {
			out.HTTP = append(out.HTTP, route)
		}
	}
	for i, r := range vs.GetTls() {
		field := fmt.Sprintf("spec.tls[%d]", i)
		var ports []uint32
		var snis []string
		for j, m := range r.GetMatch() {
			if m.GetPort() != 0 {
				ports = append(ports, m.GetPort())
			}
			for k, s := range m.GetSniHosts() {
				n, err := NormalizeHost(s)
				if err != nil {
					v.errorf(fmt.Sprintf("%s.match[%d].sniHosts[%d]", field, j, k), "%v", err)
					continue
				}
				snis = append(snis, n)
			}
			v.unapplied(fmt.Sprintf("%s.match[%d]", field, j), m, "port", "sni_hosts", "gateways")
		}
		if route, ok := v.destination(field, r.GetRoute()); ok {
			route.Ports, route.SNIHosts = ports, snis
			out.TLS = append(out.TLS, route)
		}
	}
	for i, r := range vs.GetTcp() {
		field := fmt.Sprintf("spec.tcp[%d]", i)
		var ports []uint32
		for j, m := range r.GetMatch() {
			if m.GetPort() != 0 {
				ports = append(ports, m.GetPort())
			}
			v.unapplied(fmt.Sprintf("%s.match[%d]", field, j), m, "port", "gateways")
		}
		if route, ok := v.destination(field, r.GetRoute()); ok {
			route.Ports = ports
			out.TLS = append(out.TLS, route)
		}
	}
	v.unapplied("spec", vs, "hosts", "gateways", "http", "tls", "tcp", "export_to")
	if hasErrors(v.problems) {
		return nil, v.problems
	}
	return out, v.problems
}

// httpRoute keeps an HTTP route of the egress leg. A route that matches
// on more than the port, or answers by itself (redirect, direct
// response), is not applied: the gateway would otherwise send requests
// it was not meant for.
func (v *validator) httpRoute(field string, r *networkingv1alpha3.HTTPRoute) (VirtualRoute, bool) {
	var ports []uint32
	for j, m := range r.GetMatch() {
		if m.GetPort() != 0 {
			ports = append(ports, m.GetPort())
		}
		if set := setFieldsExcept(m, "port", "gateways", "name"); len(set) > 0 {
			v.warnf(fmt.Sprintf("%s.match[%d]", field, j), "egressd routes by host and port only, so it does not apply this route (it matches on %s)", joinFields(set))
			return VirtualRoute{}, false
		}
	}
	if set := setFieldsExcept(r, "name", "match", "route", "timeout", "retries", "headers"); len(set) > 0 {
		v.warnf(field, "egressd does not apply %s at the gateway, so it does not apply this route", joinFields(set))
		return VirtualRoute{}, false
	}
	if r.GetHeaders() != nil {
		v.warnf(field+".headers", "egressd does not change headers at the gateway; ignored")
	}
	route, ok := v.destinations(field, r.GetRoute())
	if !ok {
		return VirtualRoute{}, false
	}
	route.Ports = ports
	if t := r.GetTimeout(); t != nil {
		route.Timeout = t.AsDuration()
		if route.Timeout < 0 {
			v.errorf(field+".timeout", "negative; use a positive duration, or remove it")
		}
	}
	if rr := r.GetRetries(); rr != nil && rr.GetAttempts() > 0 {
		route.Retries = &Retries{Attempts: uint32(rr.GetAttempts()), RetryOn: rr.GetRetryOn()}
		if p := rr.GetPerTryTimeout(); p != nil {
			route.Retries.PerTryTimeout = p.AsDuration()
		}
	}
	return route, true
}

// destinations keeps an HTTP route's one destination.
func (v *validator) destinations(field string, ds []*networkingv1alpha3.HTTPRouteDestination) (VirtualRoute, bool) {
	if len(ds) == 1 && ds[0].GetHeaders() != nil {
		v.warnf(field+".route[0].headers", "egressd does not change headers at the gateway; ignored")
	}
	return oneDestination(v, field, ds)
}

// destination keeps a TLS or TCP route's one destination.
func (v *validator) destination(field string, ds []*networkingv1alpha3.RouteDestination) (VirtualRoute, bool) {
	route, ok := oneDestination(v, field, ds)
	route.Field = field
	return route, ok
}

// oneDestination reads a route's destinations: exactly one is applied.
func oneDestination[D interface {
	GetDestination() *networkingv1alpha3.Destination
}](v *validator, field string, ds []D) (VirtualRoute, bool) {
	if len(ds) == 0 {
		v.errorf(field+".route", "missing; name the destination host")
		return VirtualRoute{}, false
	}
	if len(ds) > 1 {
		v.warnf(field+".route", "egressd sends a route's traffic to one destination and does not split it by weight; it does not apply this route")
		return VirtualRoute{}, false
	}
	return v.routeDestination(field+".route[0].destination", ds[0].GetDestination())
}

// routeDestination reads destination.host and port; a destination in
// the cluster (the mesh leg) is not kept.
func (v *validator) routeDestination(field string, d *networkingv1alpha3.Destination) (VirtualRoute, bool) {
	route := VirtualRoute{Field: strings.TrimSuffix(strings.TrimSuffix(field, ".destination"), ".route[0]")}
	if d == nil || d.GetHost() == "" {
		v.errorf(field+".host", "missing; name the host to send the traffic to")
		return route, false
	}
	h, err := NormalizeHost(d.GetHost())
	if err != nil {
		v.errorf(field+".host", "%v", err)
		return route, false
	}
	if inMesh(h) {
		return route, false // the hop to the egress gateway: egressd is it
	}
	if IsWildcard(h) {
		v.errorf(field+".host", "%q is a wildcard; a destination is one host", d.GetHost())
		return route, false
	}
	if d.GetSubset() != "" {
		v.warnf(field+".subset", "egressd has no subsets at the gateway; ignored")
	}
	route.Host, route.Port = h, d.GetPort().GetNumber()
	if route.Port > 65535 {
		v.errorf(field+".port.number", "%d is out of range; use 1-65535", route.Port)
		return route, false
	}
	return route, true
}

// unapplied warns about the fields of m egressd does not read, but for
// those named.
func (v *validator) unapplied(field string, m proto.Message, except ...string) {
	if set := setFieldsExcept(m, except...); len(set) > 0 {
		v.warnf(field, "egressd does not apply %s at the gateway; ignored", joinFields(set))
	}
}

func hasErrors(ps []Problem) bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}
