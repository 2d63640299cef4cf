package serviceentry

import (
	"strings"
	"testing"
)

func TestNormalizeHostValid(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"plain":                 {"api.example.com", "api.example.com"},
		"upper case":            {"API.Example.COM", "api.example.com"},
		"trailing dot":          {"api.example.com.", "api.example.com"},
		"single label":          {"localhost", "localhost"},
		"digits and hyphens":    {"a-1.b2.example.com", "a-1.b2.example.com"},
		"double hyphen":         {"r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"},
		"wildcard":              {"*.example.com", "*.example.com"},
		"wildcard tld":          {"*.com", "*.com"},
		"wildcard upper, dot":   {"*.Example.COM.", "*.example.com"},
		"idn":                   {"bücher.de", "xn--bcher-kva.de"},
		"idn upper case":        {"BÜCHER.de", "xn--bcher-kva.de"},
		"idn wildcard":          {"*.bücher.de", "*.xn--bcher-kva.de"},
		"punycode kept":         {"xn--bcher-kva.de", "xn--bcher-kva.de"},
		"punycode upper case":   {"XN--BCHER-KVA.de", "xn--bcher-kva.de"},
		"fullwidth letters":     {"ｅｘａｍｐｌｅ.com", "example.com"},
		"label of 63":           {strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
		"name of 253":           {long(253), long(253)},
		"numeric inner label":   {"123.example.com", "123.example.com"},
		"idn label after ascii": {"shop.münchen.de", "shop.xn--mnchen-3ya.de"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err != nil {
				t.Fatalf("NormalizeHost(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Normal form is a fixed point.
			again, err := NormalizeHost(got)
			if err != nil || again != got {
				t.Errorf("NormalizeHost(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizeHostInvalid(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // the whole error message
	}{
		"empty":             {"", `host is empty; name a host such as "api.example.com", or remove the item`},
		"bare star":         {"*", `"*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`},
		"bare star dot":     {"*.", `"*" matches every host; list the hosts you need, or use a wildcard such as "*.example.com"`},
		"star dot dot":      {"*..", `"*.." has no domain after the wildcard; write it as "*.example.com"`},
		"partial wildcard":  {"foo*.example.com", `"foo*.example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		"inner wildcard":    {"a.*.example.com", `"a.*.example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		"wildcard no dot":   {"*example.com", `"*example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		"double wildcard":   {"*.*.example.com", `"*.*.example.com" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		"trailing wildcard": {"example.*", `"example.*" has a misplaced "*"; a wildcard must be the whole first label, as in "*.example.com"`},
		"space":             {"api.example.com other.com", `"api.example.com other.com" contains a space; write each host as its own list item, without spaces`},
		"leading space":     {" api.example.com", `" api.example.com" contains a space; write each host as its own list item, without spaces`},
		"control":           {"a\x00.com", `"a\x00.com" contains the control character '\x00'; remove it`},
		"ipv4":              {"192.0.2.1", `"192.0.2.1" is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`},
		"ipv4 trailing dot": {"192.0.2.1.", `"192.0.2.1." is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`},
		"ipv6":              {"2001:db8::1", `"2001:db8::1" is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`},
		"ipv6 brackets":     {"[2001:db8::1]", `"[2001:db8::1]" is an IP address; put IP addresses in spec.addresses and name the service by a host name in spec.hosts`},
		"cidr":              {"10.0.0.0/8", `"10.0.0.0/8" is a CIDR range; put it in spec.addresses and name the service by a host name in spec.hosts`},
		"bad ipv4":          {"10.0.0.256", `"10.0.0.256" looks like an IP address, but is not a valid one; a host name cannot end in a number`},
		"numeric tld":       {"example.123", `"example.123" looks like an IP address, but is not a valid one; a host name cannot end in a number`},
		"url":               {"https://api.example.com/v1", `"https://api.example.com/v1" is a URL; write only the host name, without scheme, port or path`},
		"path":              {"api.example.com/v1", `"api.example.com/v1" contains a path; write only the host name, without scheme, port or path`},
		"port":              {"api.example.com:443", `"api.example.com:443" contains a port; write only the host name, and list ports in spec.ports`},
		"empty label":       {"api..example.com", `"api..example.com" has an empty label; remove the extra "."`},
		"leading dot":       {".example.com", `".example.com" has an empty label; remove the extra "."`},
		"two trailing dots": {"example.com..", `"example.com.." has an empty label; remove the extra "."`},
		"leading hyphen":    {"-api.example.com", `"-api.example.com" has a label that starts or ends with "-" ("-api"); a label must start and end with a letter or digit`},
		"trailing hyphen":   {"api-.example.com", `"api-.example.com" has a label that starts or ends with "-" ("api-"); a label must start and end with a letter or digit`},
		"underscore":        {"my_bucket.example.com", `"my_bucket.example.com" contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`},
		"underscore in idn": {"my_bücher.de", `"my_bücher.de" contains "_", which is not allowed in a host name (Istio refuses it too); use "-" if that is the real name`},
		"bad character":     {"api!.example.com", `"api!.example.com" contains '!'; a host name holds only letters, digits, "-" and "."`},
		"label too long":    {strings.Repeat("a", 64) + ".com", `"` + strings.Repeat("a", 64) + `.com" has a label of 64 characters; a DNS label has at most 63`},
		"name too long":     {long(254), `"` + long(254) + `" is 254 characters long; a host name has at most 253`},
		"bad punycode":      {"xn--zz.example.com", `"xn--zz.example.com" is not a valid internationalised domain name (invalid label "zz"); check the spelling, or write it in Punycode`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err == nil {
				t.Fatalf("NormalizeHost(%q) = %q, want error %q", tt.in, got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("NormalizeHost(%q) error:\n got %s\nwant %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		host     string
		wildcard bool
		suffix   string
	}{
		{"*.example.com", true, "example.com"},
		{"*.com", true, "com"},
		{"api.example.com", false, ""},
		{"*", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		if got := IsWildcard(tt.host); got != tt.wildcard {
			t.Errorf("IsWildcard(%q) = %v, want %v", tt.host, got, tt.wildcard)
		}
		if got := WildcardSuffix(tt.host); got != tt.suffix {
			t.Errorf("WildcardSuffix(%q) = %q, want %q", tt.host, got, tt.suffix)
		}
	}
}

// long returns a valid host name of exactly n characters.
func long(n int) string {
	var labels []string
	for n > 0 {
		l := min(n, 63)
		if n-l == 1 { // leave room for a label of at least one character
			l--
		}
		labels = append(labels, strings.Repeat("a", l))
		n -= l + 1
	}
	s := strings.Join(labels, ".")
	return s
}
