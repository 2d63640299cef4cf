package serviceentry

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// protocolNames lists the protocols egressd accepts, for messages.
const protocolNames = "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, MONGO, MYSQL, REDIS"

// protocols maps the lower-case protocol names egressd accepts to their
// Protocol.
var protocols = map[string]Protocol{
	"http":     ProtocolHTTP,
	"https":    ProtocolHTTPS,
	"http2":    ProtocolHTTP2,
	"grpc":     ProtocolGRPC,
	"grpc-web": ProtocolGRPCWeb,
	"tls":      ProtocolTLS,
	"tcp":      ProtocolTCP,
	"mongo":    ProtocolMongo,
	"mysql":    ProtocolMySQL,
	"redis":    ProtocolRedis,
}

// Validate checks one decoded ServiceEntry with Istio's rules and egressd's
// host rules. It returns the normalised Entry, or nil when the resource must
// be skipped, plus every problem found (all of them, not just the first).
//
// Any SeverityError skips the whole resource, even one that concerns a
// single port or endpoint: a half-applied ServiceEntry would allow traffic
// its author did not ask for, or hide the mistake. Warnings keep the Entry.
// Every Problem carries o.Ref.
func Validate(o Object) (*Entry, []Problem) {
	v := &validator{ref: o.Ref}
	se := o.ServiceEntry
	if se == nil {
		v.errorf("spec", "missing; a ServiceEntry needs at least spec.hosts and spec.ports")
		return nil, v.problems
	}
	e := &Entry{Ref: o.Ref}
	e.Hosts = v.hosts(se.GetHosts())
	e.Resolution = v.resolution(se.GetResolution())
	e.Addresses = v.addresses(se.GetAddresses(), e.Resolution)
	e.Ports = v.ports(se.GetPorts())
	e.Location = v.location(se.GetLocation())
	e.Endpoints = v.endpoints(se, e)
	v.hostsAndResolution(se, e)
	v.tcpPorts(e)
	e.ExportTo = v.exportTo(se.GetExportTo())
	e.SubjectAltNames = v.subjectAltNames(se.GetSubjectAltNames())
	e.WorkloadSelector = v.workloadSelector(se)
	if hasError(v.problems) {
		return nil, v.problems
	}
	return e, v.problems
}

// validator collects the problems of one ServiceEntry.
type validator struct {
	ref      Ref
	problems []Problem
}

func (v *validator) errorf(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Ref: v.ref, Field: field, Code: CodeInvalidSpec, Message: fmt.Sprintf(format, args...), Severity: SeverityError})
}

func (v *validator) warnf(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Ref: v.ref, Field: field, Code: CodeSpecWarning, Message: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

// hosts normalises every host and refuses duplicates.
func (v *validator) hosts(raw []string) []string {
	if len(raw) == 0 {
		v.errorf("spec.hosts", "at least one host is required; list the names clients connect to, e.g. [api.example.com]")
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, h := range raw {
		field := fmt.Sprintf("spec.hosts[%d]", i)
		n, err := NormalizeHost(h)
		if err != nil {
			v.errorf(field, "%v", err)
			continue
		}
		if j, dup := seen[n]; dup {
			if n == h {
				v.errorf(field, "%q is already listed as spec.hosts[%d]; remove one", h, j)
			} else {
				v.errorf(field, "%q is the same host as spec.hosts[%d] (%q once normalised); remove one", h, j, n)
			}
			continue
		}
		seen[n] = i
		out = append(out, n)
	}
	return out
}

// resolution maps the resolution; DYNAMIC_DNS is refused.
func (v *validator) resolution(r networkingv1alpha3.ServiceEntry_Resolution) Resolution {
	switch r {
	case networkingv1alpha3.ServiceEntry_NONE:
		return ResolutionNone
	case networkingv1alpha3.ServiceEntry_STATIC:
		return ResolutionStatic
	case networkingv1alpha3.ServiceEntry_DNS:
		return ResolutionDNS
	case networkingv1alpha3.ServiceEntry_DNS_ROUND_ROBIN:
		return ResolutionDNSRoundRobin
	case networkingv1alpha3.ServiceEntry_DYNAMIC_DNS:
		v.errorf("spec.resolution", "DYNAMIC_DNS is not supported by egressd; use DNS, or NONE for wildcard hosts")
	default:
		v.errorf("spec.resolution", "unknown resolution %d; use one of NONE, STATIC, DNS, DNS_ROUND_ROBIN", int32(r))
	}
	return ""
}

// addresses parses every address as an IP address (a /32 or /128 prefix)
// or CIDR range.
func (v *validator) addresses(raw []string, res Resolution) []netip.Prefix {
	var out []netip.Prefix
	for i, a := range raw {
		field := fmt.Sprintf("spec.addresses[%d]", i)
		if a == "" {
			v.errorf(field, "empty address; remove it")
			continue
		}
		if strings.Contains(a, "/") {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				v.errorf(field, "%q is not a valid CIDR range; write it as an IP address and prefix length, e.g. \"192.0.2.0/24\"", a)
				continue
			}
			if res != ResolutionNone && res != ResolutionStatic && res != "" {
				v.errorf(field, "%q is a CIDR range, which Istio allows only with resolution NONE or STATIC; list single IP addresses, or change the resolution", a)
				continue
			}
			if m := p.Masked(); m != p {
				v.warnf(field, "%q has bits set after the prefix length; it means %s: write that", a, m)
				p = m
			}
			out = append(out, p)
			continue
		}
		addr, err := netip.ParseAddr(a)
		switch {
		case err != nil && isHostName(a):
			v.errorf(field, "%q is a host name; spec.addresses holds IP addresses and CIDR ranges only: put host names in spec.hosts", a)
		case err != nil:
			v.errorf(field, "%q is not an IP address or CIDR range, e.g. \"192.0.2.10\" or \"192.0.2.0/24\"", a)
		case addr.Zone() != "":
			v.errorf(field, "%q has an IPv6 zone; remove %q", a, "%"+addr.Zone())
		default:
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
		}
	}
	return out
}

// ports checks numbers, names, protocols and target ports, and names the
// ports that have no name.
func (v *validator) ports(raw []*networkingv1alpha3.ServicePort) []Port {
	if len(raw) == 0 {
		v.errorf("spec.ports", "at least one port is required: the gateway opens only the ports ServiceEntries list; add one, e.g. {number: 443, name: https, protocol: TLS}")
		return nil
	}
	out := make([]Port, 0, len(raw))
	numbers := map[uint32]int{}
	names := map[string]int{}
	valid := make([]bool, len(raw))
	for i, sp := range raw {
		field := fmt.Sprintf("spec.ports[%d]", i)
		if sp == nil {
			v.errorf(field, "empty port; remove it")
			out = append(out, Port{})
			continue
		}
		ok := true
		p := Port{Number: sp.GetNumber(), Name: sp.GetName(), TargetPort: sp.GetTargetPort()}
		switch n := p.Number; {
		case n == 0:
			v.errorf(field+".number", "missing; set the port clients connect to (1-65535)")
			ok = false
		case n > 65535:
			v.errorf(field+".number", "%d is out of range; use 1-65535", n)
			ok = false
		default:
			if j, dup := numbers[n]; dup {
				v.errorf(field+".number", "port %d is already listed as spec.ports[%d]; each port number may appear once", n, j)
			} else {
				numbers[n] = i
			}
		}
		if proto, found := v.protocol(field+".protocol", sp.GetProtocol()); found {
			p.Protocol = proto
		} else {
			ok = false
		}
		if p.Name != "" {
			if !IsDNS1123Label(p.Name) {
				v.errorf(field+".name", "%q is not a valid port name: use at most 63 lower-case letters, digits and \"-\", starting and ending with a letter or digit, e.g. \"https\"", p.Name)
			} else if j, dup := names[p.Name]; dup {
				v.errorf(field+".name", "%q is already the name of spec.ports[%d]; port names must be unique", p.Name, j)
			} else {
				names[p.Name] = i
			}
		}
		if p.TargetPort > 65535 {
			upstream := ""
			if p.Number > 0 && p.Number <= 65535 {
				upstream = fmt.Sprintf(" to use port %d", p.Number)
			}
			v.errorf(field+".targetPort", "%d is out of range; use 1-65535, or leave it unset%s", p.TargetPort, upstream)
		}
		valid[i] = ok
		out = append(out, p)
	}
	// Name the unnamed ports "<protocol>-<number>", as endpoints' port maps
	// need a name to refer to.
	for i := range out {
		p := &out[i]
		if p.Name != "" || !valid[i] {
			continue
		}
		name := strings.ToLower(string(p.Protocol)) + "-" + strconv.FormatUint(uint64(p.Number), 10)
		if j, taken := names[name]; taken {
			v.errorf(fmt.Sprintf("spec.ports[%d].name", i), "not set, and the name egressd would give it, %q, is taken by spec.ports[%d]; give this port a name", name, j)
			continue
		}
		names[name] = i
		p.Name = name
	}
	return out
}

// protocol parses a port protocol, case-insensitively. An empty protocol is
// TCP, with a warning.
func (v *validator) protocol(field, s string) (Protocol, bool) {
	if s == "" {
		v.warnf(field, "not set; egressd treats the port as TCP (Istio would detect the protocol, the gateway cannot): set protocol: TCP, or HTTP, HTTPS or TLS if the port speaks that")
		return ProtocolTCP, true
	}
	if p, ok := protocols[strings.ToLower(s)]; ok {
		return p, true
	}
	switch strings.ToUpper(s) {
	case "UDP":
		v.errorf(field, "UDP is not supported by the gateway; egressd proxies TCP-based protocols only")
	case "HTTP_PROXY":
		v.errorf(field, "HTTP_PROXY is not supported by egressd; use HTTP")
	default:
		v.errorf(field, "unknown protocol %q; use one of %s", s, protocolNames)
	}
	return "", false
}

// location maps the location.
func (v *validator) location(l networkingv1alpha3.ServiceEntry_Location) Location {
	switch l {
	case networkingv1alpha3.ServiceEntry_MESH_EXTERNAL:
		return LocationMeshExternal
	case networkingv1alpha3.ServiceEntry_MESH_INTERNAL:
		return LocationMeshInternal
	}
	v.errorf("spec.location", "unknown location %d; use MESH_EXTERNAL or MESH_INTERNAL", int32(l))
	return ""
}

// endpoints checks the endpoints against the resolution and the ports.
func (v *validator) endpoints(se *networkingv1alpha3.ServiceEntry, e *Entry) []Endpoint {
	raw := se.GetEndpoints()
	selector := se.GetWorkloadSelector() != nil
	switch {
	case selector && len(raw) > 0:
		v.errorf("spec.workloadSelector", "only one of workloadSelector and endpoints may be set; remove one")
	case e.Resolution == ResolutionNone && len(raw) > 0:
		v.errorf("spec.endpoints", "resolution NONE cannot have endpoints, as the gateway connects to the address the client asked for; remove the endpoints, or use resolution STATIC (IP addresses) or DNS (host names)")
	case e.Resolution == ResolutionStatic && len(raw) == 0 && !selector:
		// Istio accepts it (the hosts then have nowhere to go); so does
		// egressd, saying what it means.
		v.warnf("spec.endpoints", "resolution STATIC without endpoints: the hosts are allowed but have no address to connect to, so every request or connection to them fails; list the IP addresses to connect to, or use resolution DNS to resolve the hosts")
	case e.Resolution == ResolutionDNSRoundRobin && len(raw) > 1:
		v.errorf("spec.endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint, found %d; use resolution DNS for several endpoints", len(raw))
	}

	portNames := map[string]bool{}
	var quoted []string
	for _, p := range e.Ports {
		if p.Name != "" {
			portNames[p.Name] = true
			quoted = append(quoted, strconv.Quote(p.Name))
		}
	}
	var out []Endpoint
	dropped := 0
	for i, we := range raw {
		field := fmt.Sprintf("spec.endpoints[%d]", i)
		if we == nil {
			v.errorf(field, "empty endpoint; remove it")
			continue
		}
		if we.GetAddress() == "" && we.GetNetwork() != "" {
			// Istio reaches such an endpoint through the network's
			// gateway (multi-network meshes); egressd has no path there.
			v.warnf(field, "an endpoint with network %q and no address is reached through that network's gateway in Istio; egressd cannot reach it and leaves it out", we.GetNetwork())
			dropped++
			continue
		}
		ep := Endpoint{Address: v.endpointAddress(field+".address", we.GetAddress(), e.Resolution), Weight: we.GetWeight()}
		for _, name := range slices.Sorted(maps.Keys(we.GetPorts())) {
			pfield := fmt.Sprintf("%s.ports[%s]", field, name)
			n := we.GetPorts()[name]
			if !portNames[name] {
				v.errorf(pfield, "%q is not the name of a port of this ServiceEntry; use one of %s", name, strings.Join(quoted, ", "))
				continue
			}
			if n == 0 || n > 65535 {
				v.errorf(pfield, "%d is out of range; use 1-65535", n)
				continue
			}
			if ep.Ports == nil {
				ep.Ports = map[string]uint32{}
			}
			ep.Ports[name] = n
		}
		out = append(out, ep)
	}
	if dropped > 0 && len(out) == 0 {
		if e.Resolution == ResolutionStatic {
			v.warnf("spec.endpoints", "no endpoint egressd can reach: every request or connection to these hosts fails")
		} else {
			// Without endpoints a DNS entry resolves its hosts: somewhere
			// else than the endpoints said. Fail closed instead.
			v.errorf("spec.endpoints", "no endpoint egressd can reach (each is on another network without an address); egressd would otherwise resolve the hosts themselves, which is not where the endpoints send traffic: add an address, or remove the endpoints")
		}
	}
	return out
}

// endpointAddress checks one endpoint address: an IP address for STATIC,
// an IP address or host name otherwise. It returns the address in normal
// form.
func (v *validator) endpointAddress(field, a string, res Resolution) string {
	switch {
	case a == "":
		v.errorf(field, "missing; egressd needs an address to connect to")
		return ""
	case strings.HasPrefix(a, "unix://"):
		v.errorf(field, "%q is a unix domain socket, which the gateway cannot connect to; use an IP address or host name", a)
		return ""
	}
	if addr, err := netip.ParseAddr(a); err == nil {
		if addr.Zone() != "" {
			v.errorf(field, "%q has an IPv6 zone; remove %q", a, "%"+addr.Zone())
			return ""
		}
		return addr.String()
	}
	if res == ResolutionStatic {
		v.errorf(field, "%q is not an IP address; resolution STATIC needs IP addresses: use resolution DNS to connect to host names", a)
		return ""
	}
	if strings.ContainsAny(a, "/:") {
		v.errorf(field, "%q is not an IP address or host name; write only the address, and give ports in spec.ports or the endpoint's ports", a)
		return ""
	}
	n, err := NormalizeHost(a)
	if err != nil {
		v.errorf(field, "%v", err)
		return ""
	}
	if IsWildcard(n) {
		v.errorf(field, "%q is a wildcard, which DNS cannot resolve; name one host", a)
		return ""
	}
	return n
}

// hostsAndResolution applies Istio's rules that tie hosts to the
// resolution.
func (v *validator) hostsAndResolution(se *networkingv1alpha3.ServiceEntry, e *Entry) {
	dns := e.Resolution == ResolutionDNS || e.Resolution == ResolutionDNSRoundRobin
	if dns && len(se.GetEndpoints()) == 0 {
		for i, h := range se.GetHosts() {
			if n, err := NormalizeHost(h); err == nil && IsWildcard(n) {
				v.errorf(fmt.Sprintf("spec.hosts[%d]", i), "%q is a wildcard, which DNS cannot resolve; use resolution NONE, or list endpoints to send the traffic to", h)
			}
		}
	}
	// With several hosts, only the Host header (HTTP) or SNI (TLS) tells
	// them apart; plain TCP cannot, unless the gateway simply forwards to
	// the original destination (NONE).
	if e.Resolution != ResolutionNone && e.Resolution != "" && len(se.GetHosts()) > 1 {
		for i, p := range e.Ports {
			if p.Protocol != "" && p.Number != 0 && p.Protocol.Class() == ClassTCP {
				v.errorf(fmt.Sprintf("spec.ports[%d]", i), "%s port %d cannot tell %d hosts apart: with resolution %s and several hosts, every port must be HTTP- or TLS-based (as Istio requires); use one ServiceEntry per host, or resolution NONE", p.Protocol, p.Number, len(se.GetHosts()), e.Resolution)
			}
		}
	}
}

// tcpPorts warns about TCP ports on wildcard hosts without addresses: the
// gateway sees neither a Host header nor an SNI, nor a known address.
func (v *validator) tcpPorts(e *Entry) {
	if len(e.Addresses) > 0 {
		return
	}
	wildcard := ""
	for _, h := range e.Hosts {
		if IsWildcard(h) {
			wildcard = h
			break
		}
	}
	if wildcard == "" {
		return
	}
	for i, p := range e.Ports {
		if p.Protocol != "" && p.Number != 0 && p.Protocol.Class() == ClassTCP {
			v.warnf(fmt.Sprintf("spec.ports[%d]", i), "%s port %d on wildcard host %q without spec.addresses: the gateway cannot tell such connections apart and will only route them by port; list the addresses, or use TLS or HTTP", p.Protocol, p.Number, wildcard)
		}
	}
}

// exportTo checks the visibility list.
func (v *validator) exportTo(raw []string) []string {
	seen := map[string]int{}
	for i, x := range raw {
		field := fmt.Sprintf("spec.exportTo[%d]", i)
		switch {
		case x == "." || x == "*" || x == "~":
		case IsDNS1123Label(x):
		default:
			v.errorf(field, "%q is not a namespace; use \".\" (this namespace), \"*\" (all namespaces), \"~\" (none) or a namespace name", x)
			continue
		}
		if j, dup := seen[x]; dup {
			v.errorf(field, "%q is already listed as spec.exportTo[%d]; remove one", x, j)
			continue
		}
		seen[x] = i
	}
	if _, none := seen["~"]; none && len(raw) > 1 {
		v.errorf("spec.exportTo", "\"~\" (export to no namespace) cannot be combined with other values; use it alone")
	}
	if len(raw) == 0 {
		return nil
	}
	return append([]string(nil), raw...)
}

// subjectAltNames copies the names, refusing empty ones.
func (v *validator) subjectAltNames(raw []string) []string {
	for i, s := range raw {
		if s == "" {
			v.errorf(fmt.Sprintf("spec.subjectAltNames[%d]", i), "empty name; remove it")
		}
	}
	if len(raw) == 0 {
		return nil
	}
	return append([]string(nil), raw...)
}

// workloadSelector checks the label syntax and copies the labels.
func (v *validator) workloadSelector(se *networkingv1alpha3.ServiceEntry) map[string]string {
	ws := se.GetWorkloadSelector()
	if ws == nil {
		return nil
	}
	labels := ws.GetLabels()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		field := fmt.Sprintf("spec.workloadSelector.labels[%s]", k)
		if !isQualifiedName(k) {
			v.errorf(field, "%q is not a valid label key: use an optional DNS prefix and \"/\", then at most 63 letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit", k)
		}
		if val := labels[k]; !isLabelValue(val) {
			v.errorf(field, "%q is not a valid label value: use at most 63 letters, digits, \"-\", \"_\" and \".\", starting and ending with a letter or digit (wildcards are not supported)", val)
		}
	}
	if len(se.GetEndpoints()) == 0 {
		v.warnf("spec.workloadSelector", "egressd does not read pods or WorkloadEntries, so the workloads this selects are not endpoints at the gateway")
	}
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string]string, len(labels))
	for k, val := range labels {
		out[k] = val
	}
	return out
}

// isHostName reports whether s passes the host rules.
func isHostName(s string) bool {
	_, err := NormalizeHost(s)
	return err == nil
}

// isQualifiedName reports whether s is a Kubernetes label key: an optional
// DNS-1123 subdomain prefix and "/", then a name of 1-63 characters.
func isQualifiedName(s string) bool {
	prefix, name, found := strings.Cut(s, "/")
	if !found {
		name, prefix = prefix, ""
	} else if !isDNS1123Subdomain(prefix) {
		return false
	}
	return name != "" && isLabelValue(name)
}

// isLabelValue reports whether s is a Kubernetes label value: empty, or at
// most 63 letters, digits, "-", "_" and ".", starting and ending with a
// letter or digit.
func isLabelValue(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > maxLabelLen {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}
