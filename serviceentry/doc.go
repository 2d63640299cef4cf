// Package serviceentry is the first stage of egressd's pipeline: it decodes
// Istio ServiceEntry and DestinationRule resources (networking.istio.io v1,
// v1beta1, v1alpha3) and AuthorizationPolicy and PeerAuthentication
// resources (security.istio.io v1, v1beta1), validates them with Istio's
// rules plus egressd's host rules, and compiles the valid ones into one
// immutable Allowlist snapshot.
//
// The package is pure but for ReadFile (a size-bounded read): it never
// touches the network. Sources (serviceentry/source) read bytes (a folder)
// or typed objects (the Kubernetes API); servers (DNS proxy, xDS
// translation) read the compiled Allowlist.
//
//	bytes -> Decode (strict, per KindInfo.NewSpec) -> []Object --+
//	typed Kubernetes objects -> []Object ------------------------+-> BuildConfig -> Config
//	                                                                -> CompileConfig -> *Allowlist
//
// Decoding is strict (package serviceentry/strict, which knows nothing of
// Istio's kinds): an unknown field, a wrong type or a bad enum value is a
// Problem naming the field, with a fix. The kinds egressd reads are one
// registry (Kinds, KindInfo: apiVersions, spec, validation, fail-closed
// form); BuildConfig, used by every source, validates objects through it.
// Every Problem has a stable Code (ProblemCode) besides its message.
//
// ServiceEntries say which hosts and ports are allowed. Of a
// DestinationRule only the TLS settings of its traffic policy take effect:
// CompileConfig turns them into the TLS origination (HostPort.TLS) of the
// host ports the rule applies to. AuthorizationPolicies are carried through
// for the gateway's authorization (egress/authz turns them into Envoy RBAC);
// PeerAuthentications for its mutual TLS.
//
// An invalid resource yields Problems that name the file, the resource and
// the field, and is skipped; it never poisons the rest of the snapshot. Two
// kinds are kept in a fail-closed form instead, so that a mistake never
// opens what the resource meant to close: a DestinationRule that asks for
// TLS origination, and an ALLOW, DENY or CUSTOM AuthorizationPolicy (see
// ParseConfig).
package serviceentry
