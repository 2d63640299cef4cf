package gen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
)

// Kind is the shape of one generated ServiceEntry.
type Kind int

// The kinds of ServiceEntry ServiceEntries mixes, with their shares.
const (
	// KindTLS: exact HTTPS or TLS hosts, resolution DNS (~60 %).
	KindTLS Kind = iota
	// KindHTTP: exact plain-HTTP hosts, resolution DNS (~15 %).
	KindHTTP
	// KindWildcard: a "*." host, resolution NONE, HTTPS or HTTP (~10 %).
	KindWildcard
	// KindTCP: one exact host with a unique address in 198.18.0.0/15
	// (~10 %).
	KindTCP
	// KindMultiPort: HTTP on 80 (originated to 443 by a SIMPLE
	// DestinationRule) and HTTPS on 443, resolution DNS (~5 %).
	KindMultiPort
)

// KindOf returns the kind of the i-th ServiceEntry: the mix is a fixed
// pattern of 20, so every size has the same shares.
func KindOf(i int) Kind {
	switch i % 20 {
	case 0, 1, 2:
		return KindHTTP
	case 3, 4:
		return KindWildcard
	case 5, 6:
		return KindTCP
	case 7:
		return KindMultiPort
	default: // 12 of 20
		return KindTLS
	}
}

// Namespaces is how many namespaces the entries are spread over.
const Namespaces = 50

var words = []string{"api", "auth", "billing", "cdn", "data", "edge", "files", "graph", "hooks", "ingest",
	"login", "maps", "media", "metrics", "notify", "orders", "pay", "push", "search", "storage"}

var tlds = []string{"com", "net", "io", "org", "example"}

// Name returns the metadata name of the i-th ServiceEntry (and of its
// DestinationRule, when it has one) and its namespace.
func Name(i int) (name, namespace string) {
	return fmt.Sprintf("se-%05d", i), fmt.Sprintf("team-%02d", i%Namespaces)
}

// ServiceEntries returns n ServiceEntries (and a DestinationRule for each
// multi-port one) as multi-document YAML. The same n and seed give the
// same bytes. Every host is unique; every TCP address is a unique /32 in
// 198.18.0.0/15, so n may be at most 1,000,000.
func ServiceEntries(n int, seed int64) []byte {
	if n < 0 || n > 1_000_000 {
		panic(fmt.Sprintf("gen: n = %d; use 0 to 1,000,000", n))
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	// Unique addresses: a random permutation stride over the /15.
	base := netip.MustParseAddr("198.18.0.0").As4()
	const space = 1 << 17
	stride := uint32(r.IntN(space/2))*2 + 1 // odd: a bijection modulo 2^17
	offset := uint32(r.IntN(space))
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		name, ns := Name(i)
		// The index makes a host unique; the words make it look real.
		domain := fmt.Sprintf("%s%d.%s", words[r.IntN(len(words))], i, tlds[r.IntN(len(tlds))])
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: %s}\nspec:\n", name, ns)
		switch KindOf(i) {
		case KindTLS:
			hosts := []string{"api." + domain}
			if r.IntN(3) == 0 {
				hosts = append(hosts, "www."+domain)
			}
			port, proto := uint32(443), "HTTPS"
			switch r.IntN(10) {
			case 0:
				port, proto = 8443, "TLS"
			case 1, 2:
				proto = "TLS"
			}
			fmt.Fprintf(&b, "  hosts: %s\n  ports:\n  - {number: %d, name: %s, protocol: %s}\n  resolution: DNS\n", list(hosts), port, lower(proto), proto)
		case KindHTTP:
			port := uint32(80)
			if r.IntN(5) == 0 {
				port = 8080
			}
			fmt.Fprintf(&b, "  hosts: [%s]\n  ports:\n  - {number: %d, name: http, protocol: HTTP}\n  resolution: DNS\n", "svc."+domain, port)
		case KindWildcard:
			port, proto := uint32(443), "HTTPS"
			if r.IntN(4) == 0 {
				port, proto = 80, "HTTP"
			}
			fmt.Fprintf(&b, "  hosts: [\"*.%s\"]\n  ports:\n  - {number: %d, name: %s, protocol: %s}\n  resolution: NONE\n", domain, port, lower(proto), proto)
		case KindTCP:
			k := (uint32(i)*stride + offset) % space
			a := base
			a[1] += byte(k >> 16)
			a[2] = byte(k >> 8)
			a[3] = byte(k)
			ports := []uint32{5432, 3306, 6379, 9092, 27017}
			fmt.Fprintf(&b, "  hosts: [%s]\n  addresses: [%s]\n  ports:\n  - {number: %d, name: tcp, protocol: TCP}\n  resolution: DNS\n",
				"db."+domain, netip.AddrFrom4(a), ports[r.IntN(len(ports))])
		case KindMultiPort:
			host := "gw." + domain
			fmt.Fprintf(&b, "  hosts: [%s]\n  ports:\n  - {number: 80, name: http, protocol: HTTP, targetPort: 443}\n  - {number: 443, name: https, protocol: HTTPS}\n  resolution: DNS\n", host)
			fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: %s}\nspec:\n  host: %s\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n", name, ns, host)
		}
	}
	return b.Bytes()
}

func list(hosts []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, h := range hosts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(h)
	}
	b.WriteByte(']')
	return b.String()
}

func lower(proto string) string {
	return string(bytes.ToLower([]byte(proto)))
}
