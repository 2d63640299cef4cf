package origination

import (
	"github.com/egressd/egressd/serviceentry"
)

// SourcesFor returns where an origination's material comes from: the
// client key pair (meaningful for MUTUAL only) and the CA bundle that
// verifies the upstream. A credentialName supplies both; otherwise the
// rule's file paths do, and a rule without caCertificates is verified
// against the system trust bundle.
func SourcesFor(o *serviceentry.Origination) (client, ca Source) {
	if o.CredentialName != "" {
		s := Source{CredentialName: o.CredentialName}
		return s, s
	}
	return Source{CertFile: o.ClientCertificate, KeyFile: o.PrivateKey}, Source{CAFile: o.CACertificates}
}

// SecretNamesFor names an origination's SDS secrets; egress/xds refers to
// them in the clusters, and the Store serves them.
func SecretNamesFor(o *serviceentry.Origination) (client, ca string) {
	c, a := SourcesFor(o)
	return ClientSecretName(c), CASecretName(a)
}

// SourcesOf returns every source the allowlist's originations need (the
// host ports' and their VirtualService routes'), each once, in a stable
// order: client key pairs of MUTUAL rules, and CA bundles of rules that
// verify the upstream.
func SourcesOf(a *serviceentry.Allowlist) (client, ca []Source) {
	seenClient, seenCA := map[string]bool{}, map[string]bool{}
	var originations []*serviceentry.Origination
	for _, h := range a.Hosts() {
		for _, hp := range h.Ports {
			originations = append(originations, hp.TLS)
			if hp.Route != nil { // a VirtualService's destination
				originations = append(originations, hp.Route.TLS)
			}
		}
	}
	for _, o := range originations {
		if o == nil || o.Unsupported != "" {
			continue
		}
		c, v := SourcesFor(o)
		if o.Mode == serviceentry.TLSMutual && !seenClient[ClientSecretName(c)] {
			seenClient[ClientSecretName(c)] = true
			client = append(client, c)
		}
		if !o.InsecureSkipVerify && !seenCA[CASecretName(v)] {
			seenCA[CASecretName(v)] = true
			ca = append(ca, v)
		}
	}
	return client, ca
}
