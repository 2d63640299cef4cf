package suggest

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// maxNameLen is the longest DNS-1123 label, and so the longest name.
const maxNameLen = 63

// namePrefix starts every generated metadata.name.
const namePrefix = "egressd-"

// baseName derives a ServiceEntry name from a normalised host:
// "egressd-" + host with "*" spelled "wildcard" and "." spelled "-";
// hashed (see hashedName) when longer than a label allows.
func baseName(host string) string {
	n := namePrefix + strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(host), "*", "wildcard"), ".", "-")
	if len(n) > maxNameLen {
		return hashedName(host, n)
	}
	return n
}

// hashedName keeps as much of n as fits beside "-" and a short hash of
// host, so that names that would be too long or equal stay distinct and
// stable.
func hashedName(host, n string) string {
	sum := sha256.Sum256([]byte(host))
	tag := hex.EncodeToString(sum[:4])
	if keep := maxNameLen - 1 - len(tag); len(n) > keep {
		n = n[:keep]
	}
	return strings.TrimRight(n, "-") + "-" + tag
}

// assignNames names every suggestion, unique across ss. Hosts whose names
// would be equal ("a-b.example" and "a.b.example") all get the hashed
// form, so a name never depends on which other hosts were denied first.
func assignNames(ss []Suggestion) {
	count := map[string]int{}
	for i := range ss {
		ss[i].Name = baseName(ss[i].Host)
		count[ss[i].Name]++
	}
	used := map[string]bool{}
	for i := range ss {
		if count[ss[i].Name] > 1 {
			ss[i].Name = hashedName(ss[i].Host, ss[i].Name)
		}
		// A hash collision is all but impossible; number the rest anyway.
		name := ss[i].Name
		for k := 2; used[name]; k++ {
			name = hashedName(ss[i].Host+"#"+strconv.Itoa(k), ss[i].Name)
		}
		ss[i].Name = name
		used[name] = true
	}
}
