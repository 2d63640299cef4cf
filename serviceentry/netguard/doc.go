// Package netguard decides which network addresses egressd may hand out or
// connect to. It is the one rule behind every upstream address check: the
// gateway's resolver (DNS clusters, the dynamic forward proxy), the
// gateway's address filters (RBAC on the resolved upstream), the
// translation of STATIC endpoints, and the DNS proxy's rebinding guard.
//
//	address -> Classify -> Class (public, loopback, private, ...)
//	        -> Policy.Check(address, listed) -> allowed | blocked_address | forwarding_loop
//
// Classify is pure and knows the special-purpose ranges, including the
// IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
// NAT64, 6to4, Teredo): those are judged by the address they carry.
// Policy adds what the operator decided (ranges allowed on purpose) and what
// the gateway is (its own addresses, never an upstream). Ledger remembers
// recent refusals by name, so that a failed request can be reported with
// the address that was refused.
package netguard
