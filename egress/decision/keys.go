package decision

import (
	"net/netip"
	"strconv"
	"strings"
)

// appendDestination appends d's destination key to b: the host (Host, or
// Destination when Host is empty) and ":" port, or the host alone when the
// port is 0 (DNS). A Destination that already is an address and port is
// used as it is. IPv6 hosts are bracketed before a port. The metrics' top
// destinations and the store's aggregates share this key.
func appendDestination(b []byte, d *Decision) []byte {
	host := d.Host
	if host == "" {
		if _, err := netip.ParseAddrPort(d.Destination); err == nil {
			return append(b, d.Destination...)
		}
		host = d.Destination
	}
	if d.Port == 0 {
		return append(b, host...)
	}
	if strings.IndexByte(host, ':') >= 0 {
		b = append(b, '[')
		b = append(b, host...)
		b = append(b, ']')
	} else {
		b = append(b, host...)
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(d.Port), 10)
}

// destinationKey returns appendDestination as a string.
func destinationKey(d *Decision) string {
	var buf [128]byte
	return string(appendDestination(buf[:0], d))
}

// sourceKey names who made d: its Identity when known, else its source
// IP without the port; "" when neither is known.
func sourceKey(d *Decision) string {
	if d.Identity != "" {
		return d.Identity
	}
	if !d.Source.IsValid() {
		return ""
	}
	return d.Source.Addr().Unmap().String()
}
