package suggest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/egressd/egressd/serviceentry"
)

// shadowedPorts returns the HTTP and TLS ports that a wildcard in allow
// grants host today and that an exact entry for host would take away:
// egressd matches an exact host before any wildcard, and then only the
// exact host's ports count. note explains them.
func shadowedPorts(host string, ports []Port, allow *serviceentry.Allowlist) (extra []Port, note string) {
	m := allow.Match(host)
	if m == nil || !m.Wildcard {
		return nil, ""
	}
	var numbers []string
	for _, hp := range m.Ports {
		if hp.Protocol.Class() == serviceentry.ClassTCP || hasPort(ports, hp.Number) {
			continue
		}
		extra = append(extra, newPort(hp.Number, hp.Protocol))
		numbers = append(numbers, strconv.FormatUint(uint64(hp.Number), 10))
	}
	if len(extra) == 0 {
		return nil, ""
	}
	return extra, fmt.Sprintf("port %s already allowed by %s is listed too: egressd matches an exact host before a wildcard",
		strings.Join(numbers, ", "), m.Name)
}

func hasPort(ports []Port, n uint32) bool {
	return slices.ContainsFunc(ports, func(p Port) bool { return p.Number == n })
}

// noteClashes adds a note to every suggestion whose port egressd would
// refuse to share: a plain TCP port without spec.addresses takes every
// plaintext connection on its number, so it cannot share the number with
// another TCP entry without addresses, nor with an HTTP one. Other
// suggestions and the entries of allow are checked.
func noteClashes(ss []Suggestion, allow *serviceentry.Allowlist) {
	for i := range ss {
		for _, p := range ss[i].Ports {
			tcp := classOf(p) == serviceentry.ClassTCP
			if !tcp && classOf(p) != serviceentry.ClassHTTP {
				continue
			}
			var with []string
			for j := range ss {
				if j == i {
					continue
				}
				for _, q := range ss[j].Ports {
					if q.Number == p.Number && clash(tcp, classOf(q), true) {
						with = append(with, ss[j].Host)
					}
				}
			}
			if allow != nil {
				for _, e := range allow.Entries() {
					for _, q := range e.Ports {
						if q.Number == p.Number && clash(tcp, q.Protocol.Class(), len(e.Addresses) == 0) {
							with = append(with, "ServiceEntry "+e.Ref.String())
							break
						}
					}
				}
			}
			if len(with) > 0 {
				ss[i].Notes = append(ss[i].Notes, fmt.Sprintf(
					"%s port %d clashes with %s on the same port: egressd tells plain TCP apart only by address; add spec.addresses to the TCP entries before applying",
					p.Protocol, p.Number, listSome(with)))
			}
		}
	}
}

// clash reports whether a suggested port (plain TCP when tcp, else HTTP)
// conflicts with another port of class other on the same number, which
// has no addresses when bare. Suggestions never have addresses.
func clash(tcp bool, other serviceentry.Class, bare bool) bool {
	switch other {
	case serviceentry.ClassTCP:
		return bare
	case serviceentry.ClassHTTP:
		return tcp
	}
	return false
}

func classOf(p Port) serviceentry.Class {
	return serviceentry.Protocol(p.Protocol).Class()
}

// maxListed is the most names a clash note lists.
const maxListed = 3

// listSome joins the first maxListed names and counts the rest.
func listSome(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}
