// Package origination loads, checks and serves the TLS material the
// gateway needs to originate TLS to upstreams: client key pairs (MUTUAL)
// and CA bundles (SIMPLE and MUTUAL), delivered to Envoy by SDS so that a
// rotated certificate is applied without restarting Envoy.
//
// It sits beside egress/xds in the serve stage of the pipeline:
//
//	DestinationRule tls -> Source -> ClientSecretName / CASecretName (used by egress/xds)
//	Source -> Load (files: read, parse, check) -> *Material
//	Store.Want([]Source...) -> Store.Secrets() []*tlsv3.Secret -> SDS (ADS) -> Envoy
//	files change (fsnotify, periodic resync) -> reload -> StoreConfig.OnChange
//
// # Where material comes from
//
// A Source names either absolute file paths (clientCertificate, privateKey,
// caCertificates) or a credentialName, resolved as the folder
// <cert-dir>/<credentialName>/ holding tls.crt, tls.key and ca.crt (the keys
// of a kubernetes.io/tls Secret) or cert, key and cacert (the keys of Istio's
// generic Secret); for each file the first of the two names found wins. A
// credentialName takes precedence over file paths. A CA source with neither
// is the system trust bundle (SystemCA).
//
// # What Load checks
//
// PEM that decodes; a private key that matches the leaf and is of a type
// Envoy (BoringSSL) accepts for client certificates (RSA of at least 2048
// bits, ECDSA P-256 or P-384); a chain in order, leaf first, each
// certificate signed by the next; every certificate of the chain valid now;
// a CA bundle with at least one certificate and no private key.
//
// # Rotation
//
// Store watches the folders of every file it serves (not the files, so
// atomic renames and Kubernetes "..data" symlink swaps are seen), debounces
// bursts of events, and re-checks everything every Resync. A secret whose
// files become invalid keeps its last good material, so Envoy keeps working
// while the error is logged; an expired certificate is logged at every
// resync. A new secret that cannot be loaded is left out, so the gateway
// fails closed.
//
// Private keys never appear in logs, errors or formatted output: Material
// redacts its key in String, Format, GoString, MarshalJSON and
// MarshalLogObject, and Version is a digest of hashes.
package origination
