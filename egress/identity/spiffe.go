package identity

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// DefaultTrustDomain is the trust domain of a Kubernetes cluster's mesh
// unless configured otherwise, as in Istio.
const DefaultTrustDomain = "cluster.local"

// spiffeScheme prefixes every SPIFFE ID.
const spiffeScheme = "spiffe://"

// Limits of names (SPIFFE and Kubernetes).
const (
	maxTrustDomain = 255  // SPIFFE: trust domain name
	maxSPIFFEID    = 2048 // SPIFFE: whole ID
	maxLabel       = 63   // DNS-1123 label (namespace)
	maxSubdomain   = 253  // DNS-1123 subdomain (service account, DNS name)
)

// Principal returns Istio's principal form of an identity,
// "<td>/ns/<ns>/sa/<sa>": the SPIFFE ID without its scheme, which
// authorization policies match on. It does not validate its arguments
// (see ValidateIdentity).
func Principal(trustDomain, ns, sa string) string {
	return trustDomain + "/ns/" + ns + "/sa/" + sa
}

// SPIFFEID returns the SPIFFE ID of an identity,
// "spiffe://<td>/ns/<ns>/sa/<sa>". It does not validate its arguments
// (see ValidateIdentity).
func SPIFFEID(trustDomain, ns, sa string) string {
	return spiffeScheme + Principal(trustDomain, ns, sa)
}

// ParseSPIFFEID parses a SPIFFE ID of the form
// "spiffe://<td>/ns/<ns>/sa/<sa>". Anything else is an error: another
// scheme or path shape, an empty part, a query or fragment, characters
// SPIFFE does not allow (a trust domain has lowercase letters, digits,
// '.', '-' and '_'; a path segment also uppercase letters).
func ParseSPIFFEID(uri string) (trustDomain, ns, sa string, err error) {
	bad := func(format string, args ...any) (string, string, string, error) {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: %s", uri, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(uri, spiffeScheme)
	if !ok {
		return bad("must start with %q", spiffeScheme)
	}
	if len(uri) > maxSPIFFEID {
		return bad("longer than %d bytes", maxSPIFFEID)
	}
	td, path, _ := strings.Cut(rest, "/")
	if err := checkTrustDomain(td); err != nil {
		return bad("trust domain %q: %v", td, err)
	}
	parts := strings.Split(path, "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return bad("want spiffe://<trust domain>/ns/<namespace>/sa/<service account>")
	}
	if err := checkPathSegment(parts[1]); err != nil {
		return bad("namespace: %v", err)
	}
	if err := checkPathSegment(parts[3]); err != nil {
		return bad("service account: %v", err)
	}
	return td, parts[1], parts[3], nil
}

// ValidateIdentity checks the parts of an identity: a SPIFFE trust domain,
// a namespace that is a DNS-1123 label and a service account that is a
// DNS-1123 subdomain, as Kubernetes requires of their names. The error
// names the part that is wrong and suggests a fix.
func ValidateIdentity(trustDomain, ns, sa string) error {
	if err := checkTrustDomain(trustDomain); err != nil {
		return fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	if err := checkLabel(ns); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := checkSubdomain(sa); err != nil {
		return fmt.Errorf("service account %q: %w", sa, err)
	}
	return nil
}

// ValidateDNSName checks a DNS name for a certificate's DNS SANs and
// returns it in canonical form: lowercased, without a trailing dot. A
// wildcard is allowed only as a leading "*.". IP addresses and
// internationalized names (use Punycode) are refused.
func ValidateDNSName(name string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	if net.ParseIP(n) != nil {
		return "", fmt.Errorf("DNS name %q: an IP address, not a DNS name", name)
	}
	host := strings.TrimPrefix(n, "*.")
	if err := checkHost(host); err != nil {
		return "", fmt.Errorf("DNS name %q: %w", name, err)
	}
	return n, nil
}

// checkTrustDomain checks a SPIFFE trust domain name.
func checkTrustDomain(td string) error {
	switch {
	case td == "":
		return errors.New("empty")
	case len(td) > maxTrustDomain:
		return fmt.Errorf("longer than %d characters", maxTrustDomain)
	}
	if _, host, ok := strings.Cut(td, "://"); ok {
		return fmt.Errorf("a name, not a URI: use %q", strings.TrimSuffix(host, "/"))
	}
	for _, r := range td {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		case r >= 'A' && r <= 'Z':
			return fmt.Errorf("uppercase letters; use %q", strings.ToLower(td))
		case r == ':':
			return errors.New("a trust domain has no port")
		default:
			return fmt.Errorf("character %q not allowed (use lowercase letters, digits, '.', '-', '_')", r)
		}
	}
	return nil
}

// checkPathSegment checks one segment of a SPIFFE ID's path.
func checkPathSegment(s string) error {
	switch s {
	case "":
		return errors.New("empty")
	case ".", "..":
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("character %q not allowed (use letters, digits, '.', '-', '_')", r)
		}
	}
	return nil
}

// checkLabel checks a DNS-1123 label: what Kubernetes requires of a
// namespace name.
func checkLabel(s string) error {
	if err := labelError(s); err != nil {
		return fmt.Errorf("%w%s; it must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most %d characters",
			err, suggestLower(s, labelError), maxLabel)
	}
	return nil
}

// checkSubdomain checks a DNS-1123 subdomain: what Kubernetes requires of
// a service account name.
func checkSubdomain(s string) error {
	if err := subdomainError(s); err != nil {
		return fmt.Errorf("%w%s; it must be a DNS-1123 subdomain: labels of lowercase letters, digits and '-' joined by '.', at most %d characters",
			err, suggestLower(s, subdomainError), maxSubdomain)
	}
	return nil
}

// suggestLower suggests the lowercase form of s when that one is valid.
func suggestLower(s string, check func(string) error) string {
	if l := strings.ToLower(s); l != s && check(l) == nil {
		return fmt.Sprintf(" (did you mean %q?)", l)
	}
	return ""
}

// labelError says what is wrong with s as a DNS-1123 label.
func labelError(s string) error {
	if len(s) > maxLabel {
		return fmt.Errorf("%d characters", len(s))
	}
	return labelChars(s)
}

// labelChars checks the characters of one label, whatever its length:
// lowercase letters, digits and '-', not first nor last.
func labelChars(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case s[0] == '-' || s[len(s)-1] == '-':
		return errors.New("starts or ends with '-'")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("character %q", r)
		}
	}
	return nil
}

// subdomainError says what is wrong with s as a DNS-1123 subdomain.
// Kubernetes bounds the whole name, not each label.
func subdomainError(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxSubdomain:
		return fmt.Errorf("%d characters", len(s))
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" {
			return errors.New("empty label (a leading, trailing or doubled '.')")
		}
		if err := labelChars(l); err != nil {
			return err
		}
	}
	return nil
}

// checkHost checks a host name: labels of letters, digits and '-', each
// at most 63 characters, at most 253 in all.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("empty")
	case len(h) > maxSubdomain:
		return fmt.Errorf("longer than %d characters", maxSubdomain)
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "*" {
			return errors.New("a wildcard is allowed only as a leading \"*.\"")
		}
		if err := labelError(l); err != nil {
			if strings.ContainsFunc(l, func(r rune) bool { return r > 127 }) {
				return errors.New("internationalized name: use its Punycode (xn--) form")
			}
			return fmt.Errorf("label %q: %w", l, err)
		}
	}
	return nil
}
