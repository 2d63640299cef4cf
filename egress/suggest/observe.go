package suggest

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/egress/decision"
	"github.com/egressd/egressd/serviceentry"
	"github.com/egressd/egressd/serviceentry/vocab"
)

// fixable are the reasons a ServiceEntry can fix. The others (no_sni,
// unidentified_tcp, policy_denied, tls_origination_failed, upstream_error, ...) need
// something else: an SNI, an AuthorizationPolicy, a working upstream.
var fixable = map[vocab.Reason]bool{
	vocab.ReasonNotInRegistry:    true,
	vocab.ReasonRedirectUnlisted: true,
	vocab.ReasonCNAMEToUnlisted:  true,
}

// observation is what one denial says about the host it was refused: the
// host and, when the layer saw one, the port and its protocol.
type observation struct {
	host string
	// port is 0 when no port was seen (DNS).
	port     uint32
	protocol serviceentry.Protocol
	source   string
	time     time.Time
}

// observe infers the host and port a ServiceEntry would need to allow d.
// It reports false for decisions a ServiceEntry cannot fix and for hosts
// that cannot be ServiceEntry hosts (empty, IP literals, invalid names).
func observe(d *decision.Decision) (observation, bool) {
	if d == nil || !d.Denied() || !fixable[d.Reason] {
		return observation{}, false
	}
	o := observation{source: sourceOf(d), time: d.Time}
	raw := d.Host
	switch {
	case d.Reason == vocab.ReasonRedirectUnlisted:
		if u := redirectTarget(d); u != nil {
			raw = u.Hostname()
			o.port, o.protocol = urlPort(u)
			break
		}
		o.port, o.protocol = layerPort(d)
	case d.Reason == vocab.ReasonCNAMEToUnlisted:
		// The unlisted name is the chain's last. The chain comes from the
		// DNS proxy, which sees no port.
		if t := cnameTarget(d.Detail); t != "" {
			raw = t
		}
	default:
		o.port, o.protocol = layerPort(d)
	}
	host, ok := normalize(raw)
	if !ok {
		return observation{}, false
	}
	o.host = host
	return o, true
}

// layerPort returns the port and protocol d's layer saw: HTTP for http,
// TLS for tls, TCP for tcp; none for DNS, unknown layers and a missing
// TCP port. A missing HTTP or TLS port is the scheme's default.
func layerPort(d *decision.Decision) (uint32, serviceentry.Protocol) {
	port := d.Port
	if port > 65535 {
		return 0, ""
	}
	switch d.Layer {
	case vocab.LayerHTTP:
		if port == 0 {
			port = 80
		}
		return port, serviceentry.ProtocolHTTP
	case vocab.LayerTLS:
		if port == 0 {
			port = 443
		}
		return port, serviceentry.ProtocolTLS
	case vocab.LayerTCP:
		if port == 0 {
			return 0, ""
		}
		return port, serviceentry.ProtocolTCP
	}
	return 0, ""
}

// redirectTarget returns the URL a redirect pointed to: d.Location when it
// is absolute, else the last hop of d's chain; nil when neither names a
// host.
func redirectTarget(d *decision.Decision) *url.URL {
	if u, err := url.Parse(strings.TrimSpace(d.Location)); err == nil && u.Hostname() != "" {
		return u
	}
	if d.Chain == nil || len(d.Chain.Hops) == 0 {
		return nil
	}
	last := d.Chain.Hops[len(d.Chain.Hops)-1]
	if u, err := url.Parse(strings.TrimSpace(last.URL)); err == nil && u.Hostname() != "" {
		return u
	}
	if last.Host != "" {
		return &url.URL{Host: last.Host}
	}
	return nil
}

// urlPort returns the port and protocol of a redirect target: an explicit
// port wins over the scheme's default; http (and ws) is HTTP, https (and
// wss) is TLS. Other schemes give no port.
func urlPort(u *url.URL) (uint32, serviceentry.Protocol) {
	var port uint32
	var proto serviceentry.Protocol
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		port, proto = 80, serviceentry.ProtocolHTTP
	case "https", "wss":
		port, proto = 443, serviceentry.ProtocolTLS
	default:
		return 0, ""
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return 0, ""
		}
		port = uint32(n)
	}
	return port, proto
}

// cnameTarget returns the last name of a CNAME chain as the DNS proxy
// writes it in Detail ("a.example.com -> b.cdn.net"), or "" when detail is
// no chain.
func cnameTarget(detail string) string {
	i := strings.LastIndex(detail, "->")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(detail[i+len("->"):])
}

// normalize returns h as a ServiceEntry host (lower case, no trailing dot,
// no port, IDNs in Punycode). It reports false for empty hosts, IP
// literals, wildcards and names a ServiceEntry cannot hold.
func normalize(h string) (string, bool) {
	h = strings.TrimSpace(h)
	if h == "" || isIP(h) {
		return "", false
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
		if h == "" || isIP(h) {
			return "", false
		}
	}
	n, err := serviceentry.NormalizeHost(h)
	if err != nil || serviceentry.IsWildcard(n) {
		return "", false
	}
	return n, true
}

// isIP reports whether h is an IP address, possibly in brackets.
func isIP(h string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return err == nil
}

// sourceOf names the caller: its identity when known, else its IP address
// (without the ephemeral port); "" when neither is known.
func sourceOf(d *decision.Decision) string {
	if d.Identity != "" {
		return d.Identity
	}
	if d.Source.Addr().IsValid() {
		return d.Source.Addr().Unmap().String()
	}
	return ""
}
