package suggest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/egressd/egressd/serviceentry"
)

// Port is one port of a suggested ServiceEntry.
type Port struct {
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol"`
	// Name is "<protocol>-<number>" in lower case, e.g. "tls-443".
	Name string `json:"name"`
}

// newPort names a port "<protocol>-<number>", as egressd names unnamed
// ports.
func newPort(n uint32, p serviceentry.Protocol) Port {
	return Port{Number: n, Protocol: string(p), Name: strings.ToLower(string(p)) + "-" + strconv.FormatUint(uint64(n), 10)}
}

// preference orders the protocols seen on one port: the first one seen
// wins. HTTP says the most (the Host header), TCP the least.
var preference = []serviceentry.Protocol{serviceentry.ProtocolHTTP, serviceentry.ProtocolTLS, serviceentry.ProtocolTCP}

// assumedNote explains the port given to a host seen only in DNS.
const assumedNote = "only DNS queries seen; port 443/TLS assumed"

// mergePorts turns the protocols seen per port number into ports sorted by
// number, one per number, with a note for every number seen with several
// protocols. Without any port seen, it assumes 443/TLS and says so.
func mergePorts(seen map[uint32]map[serviceentry.Protocol]bool) ([]Port, []string) {
	if len(seen) == 0 {
		return []Port{newPort(443, serviceentry.ProtocolTLS)}, []string{assumedNote}
	}
	var ports []Port
	var notes []string
	for _, n := range slices.Sorted(maps.Keys(seen)) {
		var found []string
		for _, p := range preference {
			if seen[n][p] {
				found = append(found, string(p))
			}
		}
		if len(found) == 0 {
			continue
		}
		ports = append(ports, newPort(n, serviceentry.Protocol(found[0])))
		if len(found) > 1 {
			notes = append(notes, fmt.Sprintf("port %d seen as %s; %s kept", n, strings.Join(found, " and "), found[0]))
		}
	}
	return ports, notes
}
