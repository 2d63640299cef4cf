package intake

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/egressd/egressd/egress/authz"
	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/egress/xds"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

var start = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func sock(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func commonProps(tags map[string]string, mod func(*datav3.AccessLogCommon)) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		StartTime:               timestamppb.New(start),
		DownstreamRemoteAddress: sock("10.0.0.7", 40000),
		DownstreamLocalAddress:  sock("127.0.0.1", 10443),
		CustomTags:              tags,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestFromHTTP(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.7:40000")
	allowTags := map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed", xds.TagServiceEntry: "ci/docker"}
	cases := map[string]struct {
		entry *datav3.HTTPAccessLogEntry
		want  *decision.Decision // nil: skipped
	}{
		"redirect": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) { c.UpstreamRemoteAddress = sock("192.0.2.10", 80) }),
				ProtocolVersion:  datav3.HTTPAccessLogEntry_HTTP11,
				Request:          &datav3.HTTPRequestProperties{Authority: "WWW.Docker.io:80", Path: "/v2/", RequestMethod: corev3.RequestMethod_GET},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(301), ResponseCodeDetails: "via_upstream",
					ResponseHeaders: map[string]string{"location": "https://www.docker.io/v2/"}},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "allow", Reason: "allowed", Source: src, Host: "www.docker.io", Port: 80,
				Protocol: "HTTP/1.1", Upstream: "192.0.2.10:80", ServiceEntry: "ci/docker", Method: "GET", Path: "/v2/", Status: 301,
				Location: "https://www.docker.io/v2/", Detail: "via_upstream"},
		},
		"denied host": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "deny", xds.TagReason: "not_in_registry"}, nil),
				ProtocolVersion:  datav3.HTTPAccessLogEntry_HTTP2,
				Request:          &datav3.HTTPRequestProperties{Authority: "evil.example", Path: "/", RequestMethod: corev3.RequestMethod_POST},
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403), ResponseCodeDetails: "direct_response"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "not_in_registry", Source: src, Host: "evil.example", Port: 80,
				Protocol: "HTTP/2", Method: "POST", Path: "/", Status: 403, Detail: "direct_response"},
		},
		"upstream connect failure": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) {
					c.ResponseFlags = &datav3.ResponseFlags{UpstreamConnectionFailure: true}
				}),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(503), ResponseCodeDetails: "upstream_reset_before_response_started{connection_failure}"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "upstream_error", Source: src, Host: "www.docker.io", Port: 80,
				ServiceEntry: "ci/docker", Path: "/", Status: 503, Flags: "UF", Detail: "upstream_reset_before_response_started{connection_failure}"},
		},
		"routed by Host to no cluster": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed"},
					func(c *datav3.AccessLogCommon) { c.ResponseFlags = &datav3.ResponseFlags{NoClusterFound: true} }),
				Request:  &datav3.HTTPRequestProperties{Authority: "evil.example", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403), ResponseCodeDetails: "cluster_not_found"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "not_in_registry", Source: src, Host: "evil.example", Port: 80,
				Path: "/", Status: 403, Flags: "NC", Detail: "cluster_not_found"},
		},
		"upstream TLS failure": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) {
					c.ResponseFlags = &datav3.ResponseFlags{UpstreamConnectionFailure: true}
					c.UpstreamTransportFailureReason = "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"
				}),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(503)},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "tls_origination_failed", Source: src, Host: "www.docker.io", Port: 80,
				ServiceEntry: "ci/docker", Path: "/", Status: 503, Flags: "UF", Detail: "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"},
		},
		"connect refused reported as a transport failure": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) {
					c.ResponseFlags = &datav3.ResponseFlags{UpstreamConnectionFailure: true}
					c.UpstreamTransportFailureReason = "delayed connect error: Connection refused"
				}),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(503)},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "upstream_error", Source: src, Host: "www.docker.io", Port: 80,
				ServiceEntry: "ci/docker", Path: "/", Status: 503, Flags: "UF", Detail: "delayed connect error: Connection refused"},
		},
		"policy denied, mesh caller": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed",
					xds.TagServiceEntry: "ci/docker", xds.TagMesh: "true"}, func(c *datav3.AccessLogCommon) {
					c.TlsProperties = &datav3.TLSProperties{PeerCertificateProperties: &datav3.TLSProperties_CertificateProperties{
						SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: "spiffe://cluster.local/ns/default/sa/other"}}},
					}}
				}),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/", RequestMethod: corev3.RequestMethod_POST},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403), ResponseCodeDetails: "rbac_access_denied_matched_policy[egress/deny-post#0]"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "policy_denied", Source: src, Host: "www.docker.io", Port: 80,
				ServiceEntry: "ci/docker", Method: "POST", Path: "/", Status: 403, Identity: "spiffe://cluster.local/ns/default/sa/other",
				Detail: "AuthorizationPolicy egress/deny-post"},
		},
		"default deny of ALLOW policies, unauthenticated mesh caller": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed",
					xds.TagMesh: "true"}, nil),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403), ResponseCodeDetails: "rbac_access_denied_matched_policy[none]"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "policy_denied", Source: src, Host: "www.docker.io", Port: 80,
				Path: "/", Status: 403, Identity: "unauthenticated", Detail: "no ALLOW AuthorizationPolicy matches the caller"},
		},
		"audited by an AUDIT policy": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) {
					c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
						"envoy.common": {Fields: map[string]*structpb.Value{"access_log_hint": structpb.NewBoolValue(true)}},
					}}
				}),
				Request:  &datav3.HTTPRequestProperties{Authority: "www.docker.io", Path: "/"},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "allow", Reason: "allowed", Source: src, Host: "www.docker.io", Port: 80,
				ServiceEntry: "ci/docker", Path: "/", Status: 200, Detail: "matched an AUDIT AuthorizationPolicy; via_upstream"},
		},
		"no route (malformed)": {
			entry: &datav3.HTTPAccessLogEntry{
				CommonProperties: commonProps(map[string]string{xds.TagLayer: "http", xds.TagPort: "80"}, nil),
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(400), ResponseCodeDetails: "http1.codec_error"},
			},
			want: &decision.Decision{Time: start, Layer: "http", Verdict: "deny", Reason: "malformed", Source: src, Port: 80, Status: 400, Detail: "http1.codec_error"},
		},
		"untagged": {entry: &datav3.HTTPAccessLogEntry{CommonProperties: commonProps(nil, nil)}},
		"intermediate": {entry: &datav3.HTTPAccessLogEntry{CommonProperties: commonProps(allowTags, func(c *datav3.AccessLogCommon) {
			c.IntermediateLogEntry = true
		})}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := FromHTTP(tc.entry, nil)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromTCP(t *testing.T) {
	entries, problems := serviceentry.Parse("a.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: github, namespace: default}
spec:
  hosts: [github.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
`))
	a := serviceentry.Compile(entries, problems)
	src := netip.MustParseAddrPort("10.0.0.7:40000")
	tags := func(layer, verdict, reason, port, chain string) map[string]string {
		return map[string]string{xds.TagLayer: layer, xds.TagVerdict: verdict, xds.TagReason: reason, xds.TagPort: port, xds.TagChain: chain}
	}
	cases := map[string]struct {
		common *datav3.AccessLogCommon
		want   *decision.Decision
	}{
		"tls allowed": {
			common: commonProps(tags("tls", "allow", "allowed", "443", "tls|443|github.com"), func(c *datav3.AccessLogCommon) {
				c.TlsProperties = &datav3.TLSProperties{TlsSniHostname: "GitHub.com"}
			}),
			want: &decision.Decision{Time: start, Layer: "tls", Verdict: "allow", Reason: "allowed", Source: src, Host: "github.com", Port: 443,
				Protocol: "TLS", Destination: "127.0.0.1:10443", ServiceEntry: "default/github"},
		},
		"tls unknown SNI": {
			common: commonProps(tags("tls", "deny", "not_in_registry", "443", "tls|443|unlisted"), func(c *datav3.AccessLogCommon) {
				c.TlsProperties = &datav3.TLSProperties{TlsSniHostname: "evil.example"}
			}),
			want: &decision.Decision{Time: start, Layer: "tls", Verdict: "deny", Reason: "not_in_registry", Source: src, Host: "evil.example", Port: 443,
				Protocol: "TLS", Destination: "127.0.0.1:10443"},
		},
		"tcp allowed by address, upstream refused": {
			common: commonProps(tags("tcp", "allow", "allowed", "5432", "tcp|5432|data/db"), func(c *datav3.AccessLogCommon) {
				c.ResponseFlags = &datav3.ResponseFlags{UpstreamConnectionFailure: true}
			}),
			want: &decision.Decision{Time: start, Layer: "tcp", Verdict: "deny", Reason: "upstream_error", Source: src, Port: 5432,
				Protocol: "TCP", Destination: "127.0.0.1:10443", ServiceEntry: "data/db", Flags: "UF"},
		},
		"untagged": {common: commonProps(nil, nil)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := FromTCP(&datav3.TCPAccessLogEntry{CommonProperties: tc.common}, a)
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"a.example": "a.example", "A.Example:8080": "a.example", "a.example.": "a.example",
		"[2001:db8::1]:80": "2001:db8::1", "2001:db8::1": "2001:db8::1", "": "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSANHint(t *testing.T) {
	for transport, want := range map[string]string{
		"TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify cert failed: SAN matcher, certificate SANs are []:TLS_error_end":       "only in the subject CN",
		"TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify cert failed: SAN matcher, certificate SANs are [a.test]:TLS_error_end": "carries none of the names",
		"TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify cert failed: X509_verify_cert: unable to get local issuer certificate": "",
		"delayed connect error: Connection refused": "",
	} {
		got := sanHint(transport)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("sanHint(%q) = %q, want %q", transport, got, want)
		}
	}
}

// TestSourceScopeDenied: the source scope's refusal on a plaintext port
// (authz.SourceScope) names why the caller's namespace may not reach the
// host, from the allowlist: its Sidecar, the entry's exportTo, or (a
// policy that keeps the reachable hosts) no entry at all; a dry run's
// shadow denial of an allowed request is an audit-deny.
func TestSourceScopeDenied(t *testing.T) {
	a := compile(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: team-b}
spec:
  hosts: [b.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team-b}
spec:
  hosts: [private.example]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team-a}
spec:
  egress: [{hosts: ["./*"]}]
`)
	tags := map[string]string{xds.TagLayer: "http", xds.TagPort: "80", xds.TagVerdict: "allow", xds.TagReason: "allowed"}
	for _, tc := range []struct {
		authority, policy string
		reason            vocab.Reason
		detail            string
	}{
		{"b.example", "team-a/source-scope#0", vocab.ReasonSidecarScope, "Sidecar team-a/default does not list team-b/b.example among the egress hosts of namespace team-a"},
		{"private.example:80", "team-c/source-scope#0", vocab.ReasonNotExported, "ServiceEntry team-b/private is not exported to namespace team-c (exportTo)"},
		{"unlisted.example", "team-a/source-scope#0", vocab.ReasonNotInRegistry, ""},
	} {
		e := &datav3.HTTPAccessLogEntry{
			CommonProperties: commonProps(tags, nil),
			Request:          &datav3.HTTPRequestProperties{Authority: tc.authority, Path: "/", RequestMethod: corev3.RequestMethod_GET},
			Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403),
				ResponseCodeDetails: "rbac_access_denied_matched_policy[" + tc.policy + "]"},
		}
		d, ok := FromHTTP(e, a)
		if !ok || d.Verdict != vocab.VerdictDeny || d.Reason != tc.reason || d.Detail != tc.detail {
			t.Errorf("%s: %s %s %q", tc.authority, d.Verdict, d.Reason, d.Detail)
		}
	}
	meta := map[string]*structpb.Struct{authz.HTTPFilterName: {Fields: map[string]*structpb.Value{
		"shadow_engine_result":       structpb.NewStringValue("denied"),
		"shadow_effective_policy_id": structpb.NewStringValue("team-a/source-scope-audit#0"),
	}}}
	c := commonProps(tags, nil)
	c.Metadata = &corev3.Metadata{FilterMetadata: meta}
	e := &datav3.HTTPAccessLogEntry{
		CommonProperties: c,
		Request:          &datav3.HTTPRequestProperties{Authority: "b.example", Path: "/", RequestMethod: corev3.RequestMethod_GET},
		Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
	}
	d, ok := FromHTTP(e, a)
	if !ok || d.Verdict != vocab.VerdictAuditDeny || d.Reason != vocab.ReasonSidecarScope || !strings.Contains(d.Detail, "Sidecar team-a/default") {
		t.Errorf("dry run: %s %s %q", d.Verdict, d.Reason, d.Detail)
	}
}
