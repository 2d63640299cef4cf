// Package dnsproxy is egressd's DNS enforcement point: it answers the names
// the compiled allowlist allows, refuses and records the rest. A workload
// that cannot resolve an unlisted name never opens the connection, and the
// attempt is seen.
//
//	serviceentry.Compile -> *Allowlist -> Server.SetAllowlist (atomic swap)
//	client -> UDP/TCP :15053 -> Server.ServeDNS -> answer | refuse + Decision | upstream
//
// It reads the current serviceentry.Allowlist through one atomic pointer
// (no locks on the query path) and never changes it. SetAllowlist compiles,
// per host, how to answer (plan.go) before the swap.
//
// # Allowed names
//
// A name is allowed when Allowlist.Match finds an exact host or the most
// specific "*.suffix" wildcard for it (the wildcard does not cover the
// suffix itself). Names are compared in lower case; names with escaped
// bytes ("a\.b") are never allowed. A and AAAA queries are answered:
//
//   - ServiceEntry addresses: an entry with single-IP addresses that is
//     STATIC, or that has a TCP-class port (the gateway matches TCP by
//     destination address), answers those addresses, in both modes. CIDR
//     ranges cannot be answered: such hosts are answered like hosts without
//     addresses, except that a host whose ports are all TCP-class is
//     resolved upstream in both modes (the client must reach a real address
//     inside the range); the rebinding guard lets addresses inside the
//     listed ranges through.
//   - VIPs (gateway mode): a host whose ports are all TCP-class (TCP, MONGO,
//     MYSQL, REDIS) and whose entries have no addresses gets a VIP from
//     Config.VIPRange (default 240.240.0.0/16): an FNV-1a hash of the host
//     name, with linear probing on collision, over the hosts sorted by name.
//     It depends only on the set of such hosts, so every replica and every
//     reload gives a host the same VIP; a host moves only when a host sorted
//     before it collides into its slot. Clients reach a VIP through a
//     redirect to the gateway, which takes every plaintext connection on the
//     port of such an entry.
//   - Gateway mode (default), every other host: the gateway's addresses
//     (IPv4 in A, IPv6 in AAAA; a family without addresses gets an empty
//     NOERROR answer). TTL 30s.
//   - Forward mode, every other host: resolved upstream; the real records
//     are returned after the rebinding guard. VIPs are not used in forward
//     mode: without a redirect to the gateway nobody would answer them.
//
// Other query types for allowed names:
//
//   - HTTPS and SVCB get an empty NOERROR answer in both modes: their
//     address hints, ECH configurations and alternative endpoints would let
//     clients bypass the gateway and the rebinding guard. Clients fall back
//     to A/AAAA.
//   - For a name whose addresses the proxy makes itself (gateway, static,
//     VIP): ANY gets the A and AAAA records, CNAME an empty answer, every
//     other type (TXT, MX, SRV, CAA, ...) is forwarded upstream with every
//     A/AAAA record removed from all sections (glue must not bypass the
//     gateway), and an upstream NXDOMAIN becomes NOERROR (the name exists:
//     it has addresses).
//   - For a name resolved upstream: forwarded, through the rebinding guard.
//
// # Everything else
//
// Names in pass-through zones (default cluster.local.) are forwarded
// unchanged, before the allowlist is consulted. Unlisted names are refused
// under REGISTRY_ONLY with Config.RefuseRcode (NXDOMAIN, or REFUSED), and
// forwarded unchanged under ALLOW_ANY and AUDIT (under AUDIT each is recorded
// with verdict audit-deny, reason not_in_registry). Before the first SetAllowlist every
// other query gets SERVFAIL (fail closed; EDE 14, reason not_ready). A
// refusal carries an Extended DNS Error (RFC 8914, code 15 "Blocked", with
// a short reason text) when the client sent EDNS0, is handed to
// Config.OnDecision (or, without one, logged: zap, one line, fields
// verdict, reason, host, qtype, source) and counted in
// egressd_dns_queries_total{verdict,reason}.
// Allowed queries are counted too. Malformed queries (not a query, not
// exactly one question, class other than IN, zone transfers) get FORMERR,
// NOTIMP or REFUSED and are counted with reason "malformed", without a
// Decision.
//
// Reverse zones (in-addr.arpa., ip6.arpa.) are names like any other:
// refused under REGISTRY_ONLY unless listed as pass-through zones (for
// example "10.in-addr.arpa." for a cluster's own addresses). Forwarding
// them all would open a channel to whoever runs the reverse zone of an
// address.
//
// Decisions are handed to OnDecision synchronously, on the query path, so
// OnDecision must not block: egressd enqueues them on its decision stream,
// whose consumers write the log line, count and store them off the query
// path. Without OnDecision the proxy logs each one itself, synchronously.
//
// # Upstreams
//
// Upstreams are tried in order, each with its own timeout; an error, a
// timeout, SERVFAIL or REFUSED moves on to the next. A truncated UDP answer
// is asked again over TCP at the same upstream. When every upstream fails
// the client gets SERVFAIL (EDE 22), never an unchecked answer, and a
// Decision with reason upstream_error. Identical questions in flight share
// one upstream request. Answers are cached (bounded LRU): positive ones for
// the lowest TTL of their answer records (at most 1h), NXDOMAIN and NODATA
// for the SOA's negative TTL (at most 60s); TTLs are aged when served from
// the cache. The client's EDNS0 UDP size and DO bit are passed upstream
// (its other options, such as cookies and client subnet, are not); the
// reply carries an OPT record only when the query did (with the upstream's
// extended errors), and is truncated to the client's UDP size.
//
// CNAME chains in upstream answers for allowed names are followed: when
// the chain leads to a name the allowlist does not match, the answer is
// still given, and a Decision (verdict allow, reason cname_to_unlisted_host,
// detail "a.example.com -> cdn.other.net") records it.
//
// # Rebinding guard
//
// For allowed names resolved upstream, A and AAAA records in loopback,
// link-local (including 169.254.169.254), private (RFC 1918, ULA), shared
// (100.64.0.0/10), unspecified, multicast and broadcast ranges are dropped
// from every section, unless the host's ServiceEntry lists them (in
// addresses, or as an endpoint address). Dropping some addresses records a
// Decision (verdict allow, reason blocked_address); dropping every address
// of the asked type refuses the query like an unlisted name (RefuseRcode,
// EDE 15) with verdict deny. Config.AllowPrivate turns the guard off.
// Pass-through zones and ALLOW_ANY and AUDIT answers for unlisted names are not filtered.
package dnsproxy
