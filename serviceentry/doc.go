// Package serviceentry is the first stage of egressd's pipeline: it decodes
// Istio ServiceEntry and DestinationRule resources (networking.istio.io v1,
// v1beta1, v1alpha3) and AuthorizationPolicy and PeerAuthentication
// resources (security.istio.io v1, v1beta1), validates them with Istio's
// rules plus egressd's host rules, and compiles the valid ones into one
// immutable Allowlist snapshot.
//
// The package is pure: it never touches the network or the file system.
// Sources (serviceentry/source) read bytes and objects; servers (DNS proxy,
// xDS translation) read the compiled Allowlist.
//
//	bytes -> Decode -> []Object -> Validate, ValidateRule,
//	         ValidateAuthorizationPolicy, ValidatePeerAuthentication -> Config
//	      -> CompileConfig -> *Allowlist
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
