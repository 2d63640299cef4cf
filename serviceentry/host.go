package serviceentry

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// Host name rules (egressd's, stricter than Istio's in places):
//
//   - a host is a DNS name: labels of 1-63 characters from [a-z0-9-], not
//     starting or ending with "-", at most 253 characters in all;
//   - upper case is folded to lower case, one trailing dot is removed and
//     internationalised names are converted to Punycode ("bücher.de" becomes
//     "xn--bcher-kva.de");
//   - a wildcard is only allowed as the whole first label, "*.example.com";
//     a bare "*", "foo*.example.com" and "a.*.example.com" are refused;
//   - "_" is refused, as Istio refuses it: names with an underscore are not
//     valid host names (RFC 952/1123), and an entry that egressd accepts must
//     also be accepted by Istio;
//   - an IP address is refused: it belongs in spec.addresses.

// maxHostLen is the longest DNS name, without the trailing dot.
const maxHostLen = 253

// maxLabelLen is the longest DNS label.
const maxLabelLen = 63

// idnaProfile converts internationalised names to Punycode with the lookup
// rules browsers use (UTS #46, non-transitional), but without the UTS #46
// hyphen check, so that ASCII labels such as "r3--sn-abc" stay valid.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
)

// NormalizeHost checks h against egressd's host rules and returns it in
// canonical form: lower case, without trailing dot, internationalised labels
// in Punycode. A wildcard host keeps its leading "*.". The error says what is
// wrong and how to fix it.
func NormalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New(`host is empty; name a host such as "api.example.com", or remove the item`)
	}
	for _, r := range h {
		if unicode.IsSpace(r) {
			return "", fmt.Errorf("%q contains a space; write each host as its own list item, without spaces", h)
		}
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%q contains the control character %q; remove it", h, r)
		}
	}
	name := strings.TrimSuffix(h, ".")
	if name == "*" {
		return "", errors.New(`"*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`)
	}
	if err := notAnAddress(h, name); err != nil {
		return "", err
	}
	wildcard := false
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		wildcard = true
		name = rest
	}
	if strings.Contains(name, "*") {
		return "", wildcardError(h)
	}
	if name == "" {
		return "", fmt.Errorf(`%q has no domain after the wildcard; write it as "*.example.com"`, h)
	}

	ascii, err := toASCII(h, name)
	if err != nil {
		return "", err
	}
	if err := checkLabels(h, ascii); err != nil {
		return "", err
	}
	if allDigits(ascii[strings.LastIndexByte(ascii, '.')+1:]) {
		return "", fmt.Errorf("%q looks like an IP address, but is not a valid one; a host name cannot end in a number", h)
	}
	if wildcard {
		ascii = "*." + ascii
	}
	if len(ascii) > maxHostLen {
		return "", fmt.Errorf("%q is %d characters long; a host name has at most %d", h, len(ascii), maxHostLen)
	}
	return ascii, nil
}

// IsWildcard reports whether h is a wildcard host ("*.example.com").
func IsWildcard(h string) bool {
	return strings.HasPrefix(h, "*.")
}

// WildcardSuffix returns the domain a wildcard host covers:
// "example.com" for "*.example.com". It returns "" when h is not a wildcard.
func WildcardSuffix(h string) string {
	if !IsWildcard(h) {
		return ""
	}
	return h[len("*."):]
}

// notAnAddress refuses hosts that are IP addresses, CIDR ranges, URLs or
// carry a port, each with the fix.
// h is the host as written, name the host without its trailing dot.
func notAnAddress(h, name string) error {
	bare := strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if _, err := netip.ParseAddr(bare); err == nil {
		return fmt.Errorf("%q is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts", h)
	}
	if _, err := netip.ParsePrefix(name); err == nil {
		return fmt.Errorf("%q is a CIDR range; put it in spec.addresses and name the service by a host name in spec.hosts", h)
	}
	if i := strings.Index(h, "://"); i >= 0 {
		return fmt.Errorf("%q is a URL; write only the host name, without scheme, port or path", h)
	}
	if strings.Contains(h, "/") {
		return fmt.Errorf("%q contains a path; write only the host name, without scheme, port or path", h)
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("%q contains a port; write only the host name, and list ports in spec.ports", h)
	}
	return nil
}

// wildcardError explains a misplaced "*", suggesting the nearest valid
// wildcard when there is one.
func wildcardError(h string) error {
	const rule = "a wildcard must be the whole first label"
	rest := strings.TrimLeft(h[strings.LastIndex(h, "*")+1:], ".")
	rest = strings.TrimSuffix(rest, ".")
	if rest == "" || strings.HasPrefix(rest, "-") {
		return fmt.Errorf(`%q has a misplaced "*"; %s, as in "*.example.com"`, h, rule)
	}
	return fmt.Errorf(`%q has a misplaced "*"; %s, as in "*.%s"`, h, rule, rest)
}

// toASCII lower-cases name and converts internationalised labels to
// Punycode. h is the host as written, for messages.
func toASCII(h, name string) (string, error) {
	if isASCII(name) && !strings.Contains(name, "xn--") && !strings.Contains(name, "XN--") {
		return strings.ToLower(name), nil
	}
	// Check the ASCII syntax first, so that "_" or an empty label get the
	// same message in an internationalised name as in an ASCII one.
	if err := checkLabels(h, asciiSkeleton(name)); err != nil {
		return "", err
	}
	ascii, err := idnaProfile.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid internationalised domain name (%v); check the spelling, or write it in Punycode", h, idnaReason(err))
	}
	return ascii, nil
}

// asciiSkeleton lower-cases s and replaces every non-ASCII rune with "x",
// keeping the label structure for syntax checks.
func asciiSkeleton(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x80 {
			b.WriteByte('x')
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// idnaReason shortens the idna package's error text.
func idnaReason(err error) string {
	return strings.TrimPrefix(err.Error(), "idna: ")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// checkLabels checks every label of the lower-case ASCII name against the
// DNS label rules. h is the host as written, for messages.
func checkLabels(h, name string) error {
	for _, label := range strings.Split(name, ".") {
		if err := checkLabel(h, label); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(h, label string) error {
	switch {
	case label == "":
		return fmt.Errorf(`%q has an empty label; remove the extra "."`, h)
	case len(label) > maxLabelLen:
		return fmt.Errorf("%q has a label of %d characters; a DNS label has at most %d", h, len(label), maxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf(`%q has a label that starts or ends with "-" (%q); a label must start and end with a letter or digit`, h, label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			continue
		}
		if c == '_' {
			return fmt.Errorf(`%q contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`, h)
		}
		return fmt.Errorf(`%q contains %q; a host name holds only letters, digits, "-" and "."`, h, rune(c))
	}
	return nil
}
