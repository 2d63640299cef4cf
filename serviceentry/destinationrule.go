package serviceentry

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// TLSMode is a DestinationRule's trafficPolicy.tls.mode, as Istio names it.
type TLSMode string

// TLS modes of a DestinationRule.
const (
	// TLSDisable: the gateway sends what the client sent, without TLS.
	TLSDisable TLSMode = "DISABLE"
	// TLSSimple: the gateway originates TLS and verifies the server.
	TLSSimple TLSMode = "SIMPLE"
	// TLSMutual: like TLSSimple, and the gateway presents a client
	// certificate.
	TLSMutual TLSMode = "MUTUAL"
	// TLSIstioMutual: Istio's mesh mTLS. It applies to hops inside the
	// mesh, never to origination to external hosts.
	TLSIstioMutual TLSMode = "ISTIO_MUTUAL"
)

// TLSSettings is one ClientTLSSettings block of a DestinationRule,
// validated: file paths are absolute, SNI is a normalised host name.
type TLSSettings struct {
	Mode TLSMode `json:"mode"`
	// CredentialName names the Secret (tls.crt, tls.key, ca.crt) that holds
	// the client key pair and CA bundle. It excludes the file paths below.
	CredentialName string `json:"credentialName,omitempty"`
	// ClientCertificate, PrivateKey and CACertificates are absolute paths
	// of PEM files.
	ClientCertificate string `json:"clientCertificate,omitempty"`
	PrivateKey        string `json:"privateKey,omitempty"`
	CACertificates    string `json:"caCertificates,omitempty"`
	// SNI is the server name to send; empty means the host's name.
	SNI string `json:"sni,omitempty"`
	// SubjectAltNames are the names the server certificate must carry.
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
	// InsecureSkipVerify turns off verification of the server certificate.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// Originates reports whether the settings ask the gateway to open TLS to
// the upstream: mode SIMPLE or MUTUAL.
func (t *TLSSettings) Originates() bool {
	return t != nil && (t.Mode == TLSSimple || t.Mode == TLSMutual)
}

// Rule is one DestinationRule that passed validation. Only its TLS part
// matters to egressd.
type Rule struct {
	Ref Ref `json:"ref"`
	// Host is normalised like ServiceEntry hosts: an exact name or a
	// "*.suffix" wildcard.
	Host     string   `json:"host"`
	ExportTo []string `json:"exportTo,omitempty"`
	// TLS is trafficPolicy.tls; nil if absent.
	TLS *TLSSettings `json:"tls,omitempty"`
	// PortTLS holds trafficPolicy.portLevelSettings by port number, only
	// those with tls. A port's settings replace TLS for that port.
	PortTLS map[uint32]*TLSSettings `json:"portTLS,omitempty"`
	// Invalid, when not empty, marks a rule that failed validation but
	// asks for TLS origination (mode SIMPLE or MUTUAL somewhere): it keeps
	// only Ref and Host, and the gateway refuses its host's traffic until
	// it is fixed rather than send it without the TLS it asks for.
	Invalid string `json:"invalid,omitempty"`
}

// TLSFor returns the settings that apply to port number: the port-level
// ones if any, else the rule's. The result may be nil.
func (r *Rule) TLSFor(number uint32) *TLSSettings {
	if t, ok := r.PortTLS[number]; ok {
		return t
	}
	return r.TLS
}

// ValidateRule checks one decoded DestinationRule with Istio's rules and
// egressd's host rules. It returns the normalised Rule, or nil when the
// resource has any SeverityError, plus every problem found. Warnings keep
// the Rule. Every Problem carries o.Ref.
//
// Only spec.host, spec.exportTo and the TLS settings of spec.trafficPolicy
// (top level and portLevelSettings) take effect; every other field that is
// set is named in one warning, as egressd's gateway does not apply it.
func ValidateRule(o Object) (*Rule, []Problem) {
	v := &validator{ref: o.Ref}
	dr := o.DestinationRule
	if dr == nil {
		v.errorf("spec", "missing; a DestinationRule needs at least spec.host")
		return nil, v.problems
	}
	r := &Rule{Ref: o.Ref}
	r.Host = v.ruleHost(dr.GetHost())
	r.ExportTo = v.exportTo(dr.GetExportTo())
	tp := dr.GetTrafficPolicy()
	r.TLS = v.tls("spec.trafficPolicy.tls", tp.GetTls())
	r.PortTLS = v.portLevelSettings(tp.GetPortLevelSettings())
	v.ignoredRuleFields(dr)
	if hasError(v.problems) {
		return nil, v.problems
	}
	return r, v.problems
}

// ClusterServiceSuffix completes a short DestinationRule host with its
// namespace: <name>.<namespace>.svc.cluster.local (Istio's default
// domain suffix).
const ClusterServiceSuffix = "svc.cluster.local"

// ruleHost normalises spec.host. A short name (no dot) is completed as
// Istio completes it, with the rule's namespace: "reviews" in namespace
// bookinfo is reviews.bookinfo.svc.cluster.local, an in-cluster Service.
func (v *validator) ruleHost(h string) string {
	const field = "spec.host"
	name := strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		v.errorf(field, "missing; name the host the rule applies to as a ServiceEntry lists it in spec.hosts, e.g. api.example.com")
		return ""
	case name == "*":
		v.errorf(field, `"*" matches every host; write one DestinationRule per host, or use a wildcard such as "*.example.com"`)
		return ""
	case isIPAddress(name):
		v.errorf(field, "%q is an IP address; name the host as a ServiceEntry lists it in spec.hosts", h)
		return ""
	case hasPort(name):
		v.errorf(field, "%q contains a port; write only the host name, and set the TLS of one port in spec.trafficPolicy.portLevelSettings", h)
		return ""
	}
	n, err := NormalizeHost(h)
	if err != nil {
		v.errorf(field, "%v", err)
		return ""
	}
	if !strings.Contains(n, ".") {
		full := n + "." + v.ref.Namespace + "." + ClusterServiceSuffix
		v.warnf(field, "%q is a short name: as Istio does, it means %q, a Service in the rule's namespace, not an external host; the rule acts only if a ServiceEntry lists that name (write the external host's full name, e.g. %q, if that was meant)", h, full, n+".example.com")
		return full
	}
	return n
}

// portLevelSettings checks the port numbers and the TLS of each port.
func (v *validator) portLevelSettings(raw []*networkingv1alpha3.TrafficPolicy_PortTrafficPolicy) map[uint32]*TLSSettings {
	var out map[uint32]*TLSSettings
	seen := map[uint32]int{}
	for i, p := range raw {
		field := fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d]", i)
		if p == nil {
			v.errorf(field, "empty item; remove it")
			continue
		}
		ok := true
		n := p.GetPort().GetNumber()
		switch {
		case p.GetPort() == nil:
			v.errorf(field+".port", "missing; set port: {number: N} to the ServiceEntry port these settings are for")
			ok = false
		case n == 0:
			v.errorf(field+".port.number", "missing; set the ServiceEntry port these settings are for (1-65535)")
			ok = false
		case n > 65535:
			v.errorf(field+".port.number", "%d is out of range; use 1-65535", n)
			ok = false
		default:
			if j, dup := seen[n]; dup {
				v.errorf(field+".port.number", "port %d is already listed as spec.trafficPolicy.portLevelSettings[%d]; merge the two", n, j)
				ok = false
			} else {
				seen[n] = i
			}
		}
		t := v.tls(field+".tls", p.GetTls())
		if ok && t != nil {
			if out == nil {
				out = map[uint32]*TLSSettings{}
			}
			out[n] = t
		}
	}
	return out
}

// tls checks one ClientTLSSettings block at field. It returns nil for nil.
func (v *validator) tls(field string, t *networkingv1alpha3.ClientTLSSettings) *TLSSettings {
	if t == nil {
		return nil
	}
	out := &TLSSettings{
		CredentialName:     t.GetCredentialName(),
		ClientCertificate:  t.GetClientCertificate(),
		PrivateKey:         t.GetPrivateKey(),
		CACertificates:     t.GetCaCertificates(),
		InsecureSkipVerify: t.GetInsecureSkipVerify().GetValue(),
	}
	switch t.GetMode() {
	case networkingv1alpha3.ClientTLSSettings_DISABLE:
		out.Mode = TLSDisable
	case networkingv1alpha3.ClientTLSSettings_SIMPLE:
		out.Mode = TLSSimple
	case networkingv1alpha3.ClientTLSSettings_MUTUAL:
		out.Mode = TLSMutual
	case networkingv1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		out.Mode = TLSIstioMutual
	default:
		v.errorf(field+".mode", "unknown mode %d; use one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL", int32(t.GetMode()))
	}

	switch out.Mode {
	case TLSDisable:
		if set := setFieldsExcept(t, "mode"); len(set) > 0 {
			v.warnf(field+".mode", "DISABLE (the default when mode is not set) sends no TLS, so %s %s ignored; set mode: SIMPLE or MUTUAL to originate TLS", joinFields(set), isAre(len(set)))
		}
	case TLSIstioMutual:
		v.warnf(field+".mode", "ISTIO_MUTUAL applies to hops inside the mesh, never to TLS origination to external hosts: egressd originates no TLS with these settings; use SIMPLE or MUTUAL to originate TLS")
	}

	// Credentials: a Secret or files, not both; a key pair is two files.
	if c := out.CredentialName; c != "" && !isDNS1123Subdomain(c) {
		v.errorf(field+".credentialName", "%q is not a valid Secret name: use at most 253 lower-case letters, digits, \"-\" and \".\", starting and ending with a letter or digit", c)
	}
	v.absolutePath(field+".clientCertificate", out.ClientCertificate)
	v.absolutePath(field+".privateKey", out.PrivateKey)
	v.absolutePath(field+".caCertificates", out.CACertificates)
	var files []string
	for _, f := range []struct{ name, value string }{
		{"clientCertificate", out.ClientCertificate}, {"privateKey", out.PrivateKey}, {"caCertificates", out.CACertificates},
	} {
		if f.value != "" {
			files = append(files, f.name)
		}
	}
	switch {
	case out.CredentialName != "" && len(files) > 0:
		v.errorf(field+".credentialName", "use credentialName or file paths, not both (as Istio requires): remove %s, or credentialName", joinFields(files))
	case out.ClientCertificate != "" && out.PrivateKey == "":
		v.errorf(field+".privateKey", "missing: clientCertificate is set, and a client certificate needs its private key; set privateKey too, or remove clientCertificate")
	case out.PrivateKey != "" && out.ClientCertificate == "":
		v.errorf(field+".clientCertificate", "missing: privateKey is set, and a private key needs its certificate; set clientCertificate too, or remove privateKey")
	case out.Mode == TLSMutual && out.CredentialName == "" && out.ClientCertificate == "":
		v.errorf(field, "mode MUTUAL needs a client key pair: set credentialName (a Secret with tls.crt and tls.key), or clientCertificate and privateKey (absolute file paths)")
	case out.Mode == TLSSimple && out.ClientCertificate != "":
		v.warnf(field+".clientCertificate", "mode SIMPLE sends no client certificate, so clientCertificate and privateKey are ignored; use mode MUTUAL to present them")
	}

	// The server's identity.
	if s := t.GetSni(); s != "" {
		out.SNI = v.sni(field+".sni", s)
	}
	for i, s := range t.GetSubjectAltNames() {
		if s == "" {
			v.errorf(fmt.Sprintf("%s.subjectAltNames[%d]", field, i), "empty name; remove it")
		}
	}
	if len(t.GetSubjectAltNames()) > 0 {
		out.SubjectAltNames = append([]string(nil), t.GetSubjectAltNames()...)
	}
	// Settings that are ignored even where TLS is originated. (With
	// DISABLE or ISTIO_MUTUAL everything is, as said above.)
	if !out.Originates() {
		return out
	}
	if out.InsecureSkipVerify {
		// As Istio: nothing that verifies the server may be set with it
		// (in MUTUAL, credentialName also carries the client's key pair).
		var conflicting []string
		if out.CACertificates != "" {
			conflicting = append(conflicting, "caCertificates")
		}
		if out.CredentialName != "" && out.Mode == TLSSimple {
			conflicting = append(conflicting, "credentialName")
		}
		if len(out.SubjectAltNames) > 0 {
			conflicting = append(conflicting, "subjectAltNames")
		}
		if len(conflicting) > 0 {
			v.errorf(field+".insecureSkipVerify", "true skips verifying the server's certificate, and Istio refuses it together with %s: remove %s, or insecureSkipVerify to verify the server", joinFields(conflicting), itThem(len(conflicting)))
		}
	}
	if t.GetCaCrl() != "" && out.CredentialName != "" {
		v.errorf(field+".caCrl", "cannot be set with credentialName (as Istio requires); the Secret holds the CA: remove caCrl")
	} else if t.GetCaCrl() != "" {
		v.warnf(field+".caCrl", "egressd does not check certificate revocation lists yet; caCrl is ignored")
	}
	return out
}

// absolutePath refuses a relative file path.
func (v *validator) absolutePath(field, p string) {
	if p != "" && !filepath.IsAbs(p) {
		v.errorf(field, "%q is not an absolute path; write the file's full path, starting with \"/\" (a relative path would depend on the folder egressd runs in)", p)
	}
}

// sni checks a server name: a host name, not a wildcard or address.
func (v *validator) sni(field, s string) string {
	name := strings.TrimSuffix(s, ".")
	switch {
	case isIPAddress(name):
		v.errorf(field, "%q is an IP address; SNI carries host names only (RFC 6066): name the server, or remove sni to send the host's name", s)
		return ""
	case hasPort(name):
		v.errorf(field, "%q contains a port; write only the server's host name", s)
		return ""
	}
	n, err := NormalizeHost(s)
	if err != nil {
		v.errorf(field, "%v", err)
		return ""
	}
	if IsWildcard(n) {
		v.errorf(field, "%q is a wildcard; SNI names one server: write the name the server expects, e.g. %q", s, "api."+WildcardSuffix(n))
		return ""
	}
	return n
}

// ignoredRuleFields names, in one warning, every field of dr that is set
// and that egressd does not apply: everything but host, exportTo and the
// TLS settings.
func (v *validator) ignoredRuleFields(dr *networkingv1alpha3.DestinationRule) {
	var ignored []string
	for _, name := range setFieldsExcept(dr, "host", "traffic_policy", "export_to") {
		ignored = append(ignored, "spec."+name)
	}
	tp := dr.GetTrafficPolicy()
	if tp != nil {
		for _, name := range setFieldsExcept(tp, "tls", "port_level_settings") {
			ignored = append(ignored, "spec.trafficPolicy."+name)
		}
	}
	for i, p := range tp.GetPortLevelSettings() {
		for _, name := range setFieldsExcept(p, "port", "tls") {
			ignored = append(ignored, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d].%s", i, name))
		}
	}
	if len(ignored) == 0 {
		return
	}
	v.warnf("spec", "ignored: egressd's gateway does not apply %s yet (only host, exportTo and the TLS settings take effect)", joinFields(ignored))
}

// setFieldsExcept returns the JSON names of m's populated fields, in
// declaration order, except those named (by proto name).
func setFieldsExcept(m proto.Message, except ...string) []string {
	pm := m.ProtoReflect()
	fields := pm.Descriptor().Fields()
	var out []string
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if pm.Has(fd) && !slices.Contains(except, string(fd.Name())) {
			out = append(out, fd.JSONName())
		}
	}
	return out
}

// joinFields writes "a", "a and b", "a, b and c".
func joinFields(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func itThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// isIPAddress reports whether s is an IP address, with or without
// brackets.
func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	return err == nil
}

// hasPort reports whether s is a host name with a ":port" suffix (and not
// a URL, which NormalizeHost explains).
func hasPort(s string) bool {
	return strings.Contains(s, ":") && !strings.Contains(s, "://")
}
