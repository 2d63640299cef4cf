// Package authz is the authorization stage of egressd's gateway: it turns
// validated Istio AuthorizationPolicies (serviceentry.AuthorizationPolicy)
// into Envoy RBAC filters, for the HTTP connection managers (HTTPFilters)
// and the TCP and TLS filter chains (NetworkFilters) that egress/xds builds.
//
//	[]*serviceentry.AuthorizationPolicy -> HTTPFilters, NetworkFilters -> RBAC filters in egress/xds listeners
//
// The translation is pure and deterministic: no I/O, policies ordered by
// namespace/name, filters packed with deterministic marshalling, so equal
// policies give byte-identical filters.
//
// Semantics follow Istio's: AUDIT policies become an RBAC filter with
// action LOG, then DENY policies one with action DENY, then ALLOW policies
// one with action ALLOW, which exists only when some ALLOW policy applies
// (then whatever no ALLOW policy matches is denied). Each rule of a policy
// is one Envoy RBAC policy named "<namespace>/<name>#<rule index>"
// (PolicyName), so that a denial, which Envoy reports as
// rbac_access_denied_matched_policy[<name>], names the AuthorizationPolicy
// and rule.
//
// Matching:
//
//   - principals: the peer's authenticated URI SAN, "spiffe://" + value;
//     "x*" and "*x" become prefix and suffix matches, "*" any non-empty
//     authenticated principal.
//   - namespaces: the principal matched by the regular expression
//     ".*/ns/<namespace>/.*" (with "[^/]*" for a "*").
//   - ipBlocks: the connection's source address (direct_remote_ip).
//   - hosts: in HTTP the :authority header, ignoring case and any ":port";
//     on TCP the TLS SNI (requested_server_name). A leading "*" is a suffix
//     match.
//   - ports: the destination port; methods: the :method header; paths: the
//     URL path without query ("/x*" prefix, "*x" suffix, "*" any).
//   - when: connection.sni (SNI), source.ip, source.namespace,
//     source.principal, destination.port and request.headers[<name>].
//   - values of one field are OR-ed, fields AND-ed, from, to and when
//     AND-ed, the items of from and of to OR-ed, rules OR-ed; not* fields
//     and notValues are negations.
//
// On TCP, methods, paths and request.headers cannot be seen. As Istio does,
// an ALLOW rule that needs them matches nothing (an operation that needs
// them is dropped, and a rule left without any is dropped), while DENY and
// AUDIT rules lose those fields and so match more: the gateway fails
// closed.
//
// Stats: the HTTP filters count in http.<prefix>.rbac.authz_<action>.*, the
// network filters in authz_<action>.rbac.*, <action> being audit, deny or
// allow.
package authz
