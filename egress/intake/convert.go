package intake

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/netguard"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// FromHTTP turns one HTTP access log entry of a gateway listener into a
// Decision. ok is false for
// entries that are not decisions: intermediate entries of long streams,
// and entries without egressd's tags (not from a gateway listener).
func FromHTTP(e *datav3.HTTPAccessLogEntry, a *serviceentry.Allowlist) (d *decision.Decision, ok bool) {
	return fromHTTP(e, a, nil)
}

// fromHTTP is FromHTTP with the gateway's policy scope (nil: every
// policy applies), for the policies a denial lists.
func fromHTTP(e *datav3.HTTPAccessLogEntry, a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) (d *decision.Decision, ok bool) {
	c := e.GetCommonProperties()
	if c == nil || c.GetIntermediateLogEntry() {
		return nil, false
	}
	tags := c.GetCustomTags()
	if tags[xds.TagLayer] == "" {
		return nil, false
	}
	req, resp := e.GetRequest(), e.GetResponse()
	d = common(c)
	d.Layer = vocab.LayerHTTP
	d.Port = port(tags)
	d.Verdict, d.Reason, d.ServiceEntry = vocab.Verdict(tags[xds.TagVerdict]), vocab.Reason(tags[xds.TagReason]), tags[xds.TagServiceEntry]
	if d.ServiceEntry == "" {
		// Routed by Host: the entry is named by the cluster.
		d.ServiceEntry = formatted(tags[xds.TagClusterServiceEntry])
	}
	d.Host = hostOnly(req.GetAuthority())
	d.Protocol = httpVersion(e.GetProtocolVersion())
	d.Method = req.GetRequestMethod().String()
	if req.GetRequestMethod() == corev3.RequestMethod_METHOD_UNSPECIFIED {
		d.Method = ""
	}
	d.Path = req.GetPath()
	if tags[xds.TagVia] == xds.ViaProxy {
		d.Via = xds.ViaProxy
		if id, ok := xds.ProxyIdentityOf(c.GetMetadata().GetFilterMetadata()); ok && d.Identity == "" {
			d.Identity = id
		}
		if d.Method == "CONNECT" {
			// The tunnel's target: host and port from the authority.
			if _, p, err := net.SplitHostPort(req.GetAuthority()); err == nil {
				if n, err := strconv.ParseUint(p, 10, 16); err == nil {
					d.Port = uint32(n)
				}
			}
		}
	}
	d.Status = int(resp.GetResponseCode().GetValue())
	if d.Status >= 300 && d.Status < 400 {
		d.Location = resp.GetResponseHeaders()["location"]
	}
	if details := resp.GetResponseCodeDetails(); d.Detail == "" {
		d.Detail = details
	} else if details != "" {
		d.Detail += "; " + details
	}
	if d.Via == xds.ViaProxy && resp.GetResponseCodeDetails() == xds.ProxyIdentityRequired {
		d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonPolicyDenied
		d.Detail = "the proxy requires an identity (--proxy-require-identity): the request sent no known Proxy-Authorization"
		return d, true
	}
	if guardDenied(d, resp.GetResponseCodeDetails()) || policyDenied(d, d.Detail, a, scope) {
		return d, true
	}
	if d.Verdict == "" {
		// No route matched: the request never got as far as a Host
		// decision (a malformed request, a reset before the headers).
		d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonMalformed
	}
	upstreamFailure(d, c)
	dryRun(d, c, a, scope)
	return d, true
}

// FromTCP turns one TCP access log entry (a TLS passthrough or plaintext
// TCP filter chain of a gateway listener) into a Decision; see FromHTTP. a
// (may be nil) is the current allowlist; it names the entry of a TLS host.
func FromTCP(e *datav3.TCPAccessLogEntry, a *serviceentry.Allowlist) (d *decision.Decision, ok bool) {
	return fromTCP(e, a, nil)
}

// fromTCP is FromTCP with the gateway's policy scope (see fromHTTP).
func fromTCP(e *datav3.TCPAccessLogEntry, a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) (d *decision.Decision, ok bool) {
	c := e.GetCommonProperties()
	if c == nil || c.GetIntermediateLogEntry() {
		return nil, false
	}
	tags := c.GetCustomTags()
	if tags[xds.TagLayer] == "" {
		return nil, false
	}
	d = common(c)
	d.Layer = vocab.Layer(tags[xds.TagLayer])
	d.Port = port(tags)
	d.Verdict, d.Reason = vocab.Verdict(tags[xds.TagVerdict]), vocab.Reason(tags[xds.TagReason])
	d.Host = strings.ToLower(c.GetTlsProperties().GetTlsSniHostname())
	d.Destination = addressString(c.GetDownstreamLocalAddress())
	if d.Layer == vocab.LayerTLS {
		d.Protocol = "TLS"
	} else {
		d.Protocol = "TCP"
	}
	if d.Verdict == vocab.VerdictAllow && d.Reason == vocab.ReasonAllowed {
		d.ServiceEntry = entryOf(a, d.Layer, d.Host, d.Port, tags[xds.TagChain])
		if d.ServiceEntry == "" {
			// A chain that chose the cluster by address: it names the entry.
			d.ServiceEntry = formatted(tags[xds.TagClusterServiceEntry])
		}
	}
	if policyDenied(d, c.GetConnectionTerminationDetails(), a, scope) {
		return d, true
	}
	upstreamFailure(d, c)
	dryRun(d, c, a, scope)
	return d, true
}

// dryRun turns an allowed decision that a dry-run Sidecar (a SHADOW_DENY
// policy, see authz.SidecarScope) would have refused into audit-deny with
// reason sidecar_scope: the traffic went through, as the dry run wants.
func dryRun(d *decision.Decision, c *datav3.AccessLogCommon, a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) {
	if d.Verdict != vocab.VerdictAllow {
		return
	}
	policy, ok := authz.ShadowDenied(c.GetMetadata().GetFilterMetadata())
	if !ok {
		return
	}
	ref, _, _ := authz.ParsePolicyName(policy)
	if sc, audit, ok := authz.IsSidecarPolicy(ref); ok && audit {
		d.Verdict, d.Reason = vocab.VerdictAuditDeny, vocab.ReasonSidecarScope
		d.Detail = "Sidecar " + sc + " does not list the host among the egress hosts of the caller's namespace (dry run: allowed)"
	}
	if ns, audit, ok := authz.IsSourceScopePolicy(ref); ok && audit {
		if reason, detail := sourceScope(d, ns, a, scope); reason == vocab.ReasonSidecarScope {
			d.Verdict, d.Reason, d.Detail = vocab.VerdictAuditDeny, reason, detail+" (dry run: allowed)"
		}
	}
}

// guardDenied turns a request the gateway's address guard refused (the
// RBAC filter after the HTTP forward proxy, on the address the Host
// resolved to) into deny / forwarding_loop or blocked_address, and
// reports whether it did. Which address it was Envoy does not say; a Host
// that is an address names it.
func guardDenied(d *decision.Decision, details string) bool {
	var reason vocab.Reason
	switch details {
	case rbacDenied + xds.GuardPolicyLoop + "]":
		reason = vocab.ReasonForwardingLoop
	case rbacDenied + xds.GuardPolicyBlocked + "]":
		reason = vocab.ReasonBlockedAddress
	default:
		return false
	}
	d.Verdict, d.Reason, d.Detail = vocab.VerdictDeny, reason, ""
	if ip, err := netip.ParseAddr(d.Host); err == nil {
		v := netguard.Classify(ip)
		if reason == vocab.ReasonForwardingLoop {
			d.Detail = d.Host + " is the gateway's own address"
		} else {
			d.Detail = d.Host + " is " + v.String() + "; the gateway does not connect there"
		}
	} else if reason == vocab.ReasonForwardingLoop {
		d.Detail = d.Host + " resolves to the gateway's own address"
	} else {
		d.Detail = d.Host + " resolves to a blocked address; the gateway does not connect there"
	}
	return true
}

// rbacDenied is how Envoy's RBAC filters report a denial, in HTTP response
// code details and TCP connection termination details:
// "rbac_access_denied_matched_policy[<policy>]" ("[none]": no ALLOW policy
// matched).
const rbacDenied = "rbac_access_denied_matched_policy["

// policyDenied turns a decision that an AuthorizationPolicy refused into
// deny / policy_denied naming the policy, and reports whether it did.
// When no ALLOW policy matched, Envoy names none: the detail then lists the
// ALLOW policies in force and whom they allow, from the allowlist a.
func policyDenied(d *decision.Decision, details string, a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) bool {
	i := strings.Index(details, rbacDenied)
	if i < 0 {
		return false
	}
	policy := strings.TrimSuffix(details[i+len(rbacDenied):], "]")
	if j := strings.IndexByte(policy, ']'); j >= 0 {
		policy = policy[:j]
	}
	d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonPolicyDenied
	switch {
	case policy == "none" || policy == "":
		d.Detail = "no ALLOW AuthorizationPolicy matches the caller" + allowPolicies(a, scope)
	default:
		if k := strings.LastIndexByte(policy, '#'); k > 0 {
			policy = policy[:k] // "ns/name#rule" -> "ns/name"
		}
		d.Detail = "AuthorizationPolicy " + policy
		if se, ok := authz.IsExportPolicy(policy); ok {
			d.Reason = vocab.ReasonNotExported
			d.Detail = "ServiceEntry " + se + " is not exported to the caller's namespace (exportTo)"
		}
		if sc, _, ok := authz.IsSidecarPolicy(policy); ok {
			d.Reason = vocab.ReasonSidecarScope
			d.Detail = "Sidecar " + sc + " does not list the host among the egress hosts of the caller's namespace"
		}
		if ns, _, ok := authz.IsSourceScopePolicy(policy); ok {
			d.Reason, d.Detail = sourceScope(d, ns, a, scope)
		}
	}
	return true
}

// sourceScope says why the source scope of a plaintext port (see
// authz.SourceScope) refused a caller from namespace ns: the host is not
// exported to it, its Sidecar does not list it, or (the policy keeps the
// reachable hosts) the host is not listed on the port at all.
func sourceScope(d *decision.Decision, ns string, a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) (vocab.Reason, string) {
	root := ""
	if scope != nil {
		root = scope.RootNamespace
	}
	h, hp, ok := a.MatchPort(d.Host, d.Port)
	if !ok || hp.Entry == nil {
		return vocab.ReasonNotInRegistry, ""
	}
	reason, detail := a.ReachableHost(ns, root, h.Name, h, d.Port)
	if reason == "" {
		// The pods or the configuration changed since Envoy decided.
		return vocab.ReasonSidecarScope, "the caller's namespace " + ns + " may not reach the host (source scope)"
	}
	return vocab.Reason(reason), detail
}

// common fills what HTTP and TCP entries share.
func common(c *datav3.AccessLogCommon) *decision.Decision {
	d := &decision.Decision{
		Source:   addrPort(c.GetDownstreamRemoteAddress()),
		Upstream: addressString(c.GetUpstreamRemoteAddress()),
		Flags:    flags(c.GetResponseFlags()),
		Identity: identity(c),
	}
	if audited(c) {
		d.Detail = "matched an AUDIT AuthorizationPolicy"
	}
	if t := c.GetStartTime(); t != nil {
		d.Time = t.AsTime()
	}
	return d
}

// Unauthenticated is the identity of a caller on the mesh listener that
// presented no certificate (allowed under PERMISSIVE).
const Unauthenticated = "unauthenticated"

// identity is the caller's SPIFFE ID from its mesh certificate, or
// Unauthenticated on the mesh listener without one, or "" elsewhere.
func identity(c *datav3.AccessLogCommon) string {
	for _, san := range c.GetTlsProperties().GetPeerCertificateProperties().GetSubjectAltName() {
		if uri := san.GetUri(); strings.HasPrefix(uri, "spiffe://") {
			return uri
		}
	}
	if c.GetCustomTags()[xds.TagMesh] == "true" {
		return Unauthenticated
	}
	return ""
}

// audited reports whether an AUDIT AuthorizationPolicy matched: Envoy's
// RBAC filter with action LOG sets envoy.common's access_log_hint.
func audited(c *datav3.AccessLogCommon) bool {
	return c.GetMetadata().GetFilterMetadata()["envoy.common"].GetFields()["access_log_hint"].GetBoolValue()
}

// upstreamFailure turns an allowed decision whose upstream could not be
// reached into a denial with the reason why: the client got nothing from
// the destination. Traffic that was not allowed keeps its verdict.
func upstreamFailure(d *decision.Decision, c *datav3.AccessLogCommon) {
	if d.Verdict != vocab.VerdictAllow {
		return
	}
	f := c.GetResponseFlags()
	// Envoy reports every transport failure here, a refused TCP connect
	// ("delayed connect error: Connection refused") as well as a failed
	// TLS handshake ("TLS_error:...CERTIFICATE_VERIFY_FAILED").
	transport := c.GetUpstreamTransportFailureReason()
	switch {
	case f.GetNoClusterFound() || formatted(c.GetCustomTags()[xds.TagAbsent]) == "true":
		// Routed by Host (or SNI), the destination names its cluster;
		// there is none because no entry allows it (or no longer does), or
		// on-demand discovery answered with an absent cluster.
		d.Verdict, d.Reason, d.ServiceEntry = vocab.VerdictDeny, vocab.ReasonNotInRegistry, ""
		return
	case isTLSFailure(transport):
		d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonTLSOriginationFailed
	case transport != "" || f.GetUpstreamConnectionFailure() || f.GetNoHealthyUpstream() || f.GetDnsResolutionFailure() ||
		f.GetUpstreamOverflow():
		d.Verdict, d.Reason = vocab.VerdictDeny, vocab.ReasonUpstreamError
	default:
		return
	}
	if transport != "" {
		// The upstream's own words; HTTP's response code details repeat
		// them with underscores.
		d.Detail = transport
		if hint := sanHint(transport); hint != "" {
			d.Detail += "; " + hint
		}
	}
}

// sanMismatch is Envoy's error detail when the upstream's certificate
// carries none of the names the gateway verifies (the DestinationRule's
// subjectAltNames, else its sni or the host).
const sanMismatch = "verify cert failed: SAN matcher"

// sanHint explains a SAN mismatch in a TLS failure, "" for any other.
func sanHint(transport string) string {
	if !strings.Contains(transport, sanMismatch) {
		return ""
	}
	if strings.Contains(transport, "certificate SANs are []") {
		return "the server's certificate has no subjectAltNames: its name is only in the subject CN, which egressd does not accept (as RFC 6125 and browsers do not); reissue the certificate with a DNS subjectAltName, or set insecureSkipVerify to skip verifying it"
	}
	return "the server's certificate carries none of the names the gateway verifies (the DestinationRule's subjectAltNames, else its sni, else the host): set subjectAltNames to a name it carries, or sni to the server's name"
}

// formatted is a tag Envoy formatted from a command: "-" when the value
// is missing.
func formatted(tag string) string {
	if tag == "-" {
		return ""
	}
	return tag
}

// isTLSFailure reports whether an upstream transport failure reason is a
// TLS handshake failure rather than a connect failure.
func isTLSFailure(reason string) bool {
	r := strings.ToUpper(reason)
	return strings.Contains(r, "TLS") || strings.Contains(r, "SSL") || strings.Contains(r, "CERTIFICATE")
}

// entryOf names the ServiceEntry that allowed a TLS or TCP connection. TCP
// chains carry it in their name ("tcp|5432|ns/name"); TLS chains carry the
// host, whose entry the allowlist knows.
func entryOf(a *serviceentry.Allowlist, layer vocab.Layer, host string, port uint32, chain string) string {
	if layer == vocab.LayerTCP {
		c, _ := vocab.ParseChain(chain)
		return c.Entry()
	}
	if _, hp, ok := a.MatchPort(host, port); ok && hp.Entry != nil {
		return hp.Entry.Ref.String()
	}
	return ""
}

func port(tags map[string]string) uint32 {
	n, err := strconv.ParseUint(tags[xds.TagPort], 10, 16)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// hostOnly strips the port from an HTTP authority and lower-cases it.
func hostOnly(authority string) string {
	h := authority
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return strings.ToLower(h[1:i])
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

func httpVersion(v datav3.HTTPAccessLogEntry_HTTPVersion) string {
	switch v {
	case datav3.HTTPAccessLogEntry_HTTP10:
		return "HTTP/1.0"
	case datav3.HTTPAccessLogEntry_HTTP11:
		return "HTTP/1.1"
	case datav3.HTTPAccessLogEntry_HTTP2:
		return "HTTP/2"
	case datav3.HTTPAccessLogEntry_HTTP3:
		return "HTTP/3"
	}
	return ""
}

func addrPort(a *corev3.Address) netip.AddrPort {
	sa := a.GetSocketAddress()
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
}

func addressString(a *corev3.Address) string {
	if ap := addrPort(a); ap.IsValid() {
		return ap.String()
	}
	return ""
}

// flags renders Envoy's response flags in their short access-log form.
func flags(f *datav3.ResponseFlags) string {
	if f == nil {
		return ""
	}
	var out []string
	add := func(set bool, code string) {
		if set {
			out = append(out, code)
		}
	}
	add(f.GetNoHealthyUpstream(), "UH")
	add(f.GetUpstreamConnectionFailure(), "UF")
	add(f.GetUpstreamOverflow(), "UO")
	add(f.GetNoRouteFound(), "NR")
	add(f.GetNoClusterFound(), "NC")
	add(f.GetDnsResolutionFailure(), "DF")
	add(f.GetUpstreamRemoteReset(), "UR")
	add(f.GetUpstreamConnectionTermination(), "UC")
	add(f.GetUpstreamRequestTimeout(), "UT")
	add(f.GetLocalReset(), "LR")
	add(f.GetDownstreamConnectionTermination(), "DC")
	add(f.GetDownstreamProtocolError(), "DPE")
	add(f.GetUpstreamProtocolError(), "UPE")
	add(f.GetStreamIdleTimeout(), "SI")
	add(f.GetDurationTimeout(), "DT")
	add(f.GetOverloadManager(), "OM")
	add(f.GetDownstreamRemoteReset(), "DR")
	add(f.GetUnauthorizedDetails() != nil, "UAEX")
	add(f.GetRateLimited(), "RL")
	return strings.Join(out, ",")
}

// allowPolicies describes the ALLOW policies of a that apply to the
// gateway (scope): "; ALLOW policies: ns/name (principals a, b), ...".
func allowPolicies(a *serviceentry.Allowlist, scope *serviceentry.PolicyScope) string {
	if a == nil {
		return ""
	}
	var parts []string
	applied, _ := a.AuthorizationPoliciesFor(scope)
	for _, p := range applied {
		if p.Action != serviceentry.AuthzAllow {
			continue
		}
		var principals []string
		for _, r := range p.Rules {
			for _, f := range r.From {
				principals = append(principals, f.Principals...)
				for _, ns := range f.Namespaces {
					principals = append(principals, "namespace "+ns)
				}
			}
		}
		desc := p.Ref.String()
		if len(principals) > 0 {
			desc += " (allows " + strings.Join(principals, ", ") + ")"
		}
		parts = append(parts, desc)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; ALLOW policies: " + strings.Join(parts, ", ")
}
