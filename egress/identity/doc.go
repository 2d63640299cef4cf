// Package identity is the mesh trust domain's certificate authority: it
// opens or creates the CA (LoadOrCreate, Load), issues SPIFFE workload
// certificates (X.509 SVIDs) from it (CA.Issue), and keeps the egress
// gateway's own SVID fresh and served, with the trust bundle, as SDS
// secrets (Gateway).
//
// It sits beside origination in the serve stage of the pipeline:
//
//	CA folder (Istio "cacerts" layout) -> LoadOrCreate -> *CA
//	*CA -> Gateway: SVID for <td>/ns/<ns>/sa/<sa>, renewed at half life
//	Gateway.Secrets() []*tlsv3.Secret -> SDS (ADS) -> Envoy; GatewayConfig.OnChange after a renewal
//	*CA -> Issue -> egressctl cert issue (VMs, tests)
//
// # Identities
//
// A workload's identity is its namespace and service account in a trust
// domain, written as a SPIFFE ID "spiffe://<td>/ns/<ns>/sa/<sa>"
// (SPIFFEID, ParseSPIFFEID) or in Istio's principal form
// "<td>/ns/<ns>/sa/<sa>" (Principal), which is what authorization policies
// match on.
//
// # The CA folder
//
// The folder holds Istio's plugged-in CA layout: ca-cert.pem (the signing
// certificate), ca-key.pem (its key), root-cert.pem (the trust bundle) and
// cert-chain.pem (ca-cert.pem and its issuers, up to the root). Pointing
// egressd at an existing Istio mesh's cacerts makes its certificates
// trusted by that mesh. When the folder has none of these files, LoadOrCreate
// creates a self-signed root there in the same layout and later runs load
// it again; a folder with only some of them is an error. Load never
// creates anything; egressctl uses it.
//
// Private keys never appear in logs, errors or formatted output: CA and
// Gateway format as a short description without key material.
package identity
