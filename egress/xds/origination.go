package xds

import (
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/egressd/egressd/egress/gateway"
	"github.com/egressd/egressd/serviceentry"
)

// SecretNames names the SDS secrets an origination needs: the client key
// pair (MUTUAL) and the CA bundle that verifies the upstream. The same
// names must be served by SDS; egressd wires origination's naming here.
type SecretNames func(o *serviceentry.Origination) (client, ca string)

// originate puts the upstream TLS of the model on a host cluster: SNI,
// the client certificate (MUTUAL) and the CA bundle by SDS, so that both
// rotate without touching the cluster, and the server's names checked
// against SubjectAltNames.
func originate(c *clusterv3.Cluster, t *gateway.Origination) {
	common := &tlsv3.CommonTlsContext{
		TlsParams:     &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
		AlpnProtocols: t.ALPN,
	}
	if t.ClientSecret != "" {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(t.ClientSecret)}
	}
	if !t.InsecureSkipVerify {
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(t.SubjectAltNames)},
				ValidationContextSdsSecretConfig: sdsSecret(t.CASecret),
			},
		}
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
			Sni:              t.SNI,
			CommonTlsContext: common,
		})},
	}
}

// sanMatchers accepts the upstream's certificate when it names one of the
// rule's subjectAltNames (a URI for spiffe:// names, else a DNS name), or,
// without any, the SNI.
func sanMatchers(names []string) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(names))
	for _, n := range names {
		m := &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}},
		}
		if strings.Contains(n, "://") {
			m.SanType = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, m)
	}
	return out
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		},
	}
}

// secretsOf lists the SDS secret names a cluster's transport socket refers
// to, so the snapshot can be checked for them.
func secretsOf(c *clusterv3.Cluster) []string {
	if c.GetTransportSocket() == nil {
		return nil
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return nil
	}
	var out []string
	for _, s := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		out = append(out, s.GetName())
	}
	if s := ctx.GetCommonTlsContext().GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); s != nil {
		out = append(out, s.GetName())
	}
	return out
}

// downstreamSecretsOf lists the SDS secrets a listener's TLS refers to
// (the mesh listener's certificate and trust bundle).
func downstreamSecretsOf(ts *corev3.TransportSocket) []string {
	if ts == nil {
		return nil
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return nil
	}
	var out []string
	for _, s := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		out = append(out, s.GetName())
	}
	if s := ctx.GetCommonTlsContext().GetValidationContextSdsSecretConfig(); s != nil {
		out = append(out, s.GetName())
	}
	return out
}
