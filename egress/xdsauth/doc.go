// Package xdsauth authenticates the clients of egressd's xDS port, which
// serves the gateway's configuration, its secrets (SDS: TLS origination
// keys, the gateway's own key) and the Access Log Service the gateway
// reports every connection to. Only an Envoy gateway with a certificate
// from the mesh CA naming a gateway identity gets in:
//
//	client --TLS--> Credentials.ServerHandshake: chain to the mesh CA? a gateway identity?
//	        no  --> refused before any request (counted, logged once per client)
//	        yes --> xDS, SDS and ALS streams; PeerIdentity names the gateway
//
// It also renders the gateway's client certificate as the files Envoy
// reads by file-based SDS (CredentialFiles, WriteCredentials): written
// into the managed Envoy's run folder, or into a Kubernetes Secret a
// gateway pod mounts. Its place in the pipeline: it wraps the gRPC server
// of egress/xds, with certificates from egress/identity.
package xdsauth
