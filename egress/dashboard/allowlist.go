package dashboard

import (
	"strconv"

	"github.com/egressd/egressd/serviceentry"
)

// AllowlistView is the JSON body of /api/v1/allowlist: every allowed host
// with the ServiceEntry behind each of its ports, the DestinationRules
// compiled in, and every problem found. It carries names and file paths of
// key material (credentialName, clientCertificate, privateKey,
// caCertificates), never the material itself.
type AllowlistView struct {
	// Loaded is false before the first allowlist; everything else is then
	// empty.
	Loaded   bool          `json:"loaded"`
	Version  string        `json:"version"`
	Hosts    []HostView    `json:"hosts"`
	Entries  []EntryView   `json:"entries"`
	Rules    []RuleView    `json:"rules"`
	Problems []ProblemView `json:"problems"`
	// Errors counts the problems of severity error: resources (or parts
	// of them) that were skipped.
	Errors int `json:"errors"`
}

// HostView is one allowed host.
type HostView struct {
	Name     string     `json:"name"`
	Wildcard bool       `json:"wildcard,omitempty"`
	Ports    []PortView `json:"ports"`
}

// PortView is one allowed port of a host and what allows it.
type PortView struct {
	Number     uint32 `json:"number"`
	Protocol   string `json:"protocol"`
	Name       string `json:"name,omitempty"`
	TargetPort uint32 `json:"target_port,omitempty"`
	// ServiceEntry is "namespace/name" of the entry that allows the port.
	ServiceEntry string `json:"serviceentry"`
	File         string `json:"file,omitempty"`
	Line         int    `json:"line,omitempty"`
	Resolution   string `json:"resolution"`
	Location     string `json:"location,omitempty"`
	// TLS is the TLS origination on this port; nil when none.
	TLS *TLSView `json:"tls,omitempty"`
}

// TLSView is the TLS the gateway originates on one host port.
type TLSView struct {
	Mode string `json:"mode"`
	// Rule is "namespace/name" of the DestinationRule.
	Rule               string   `json:"rule"`
	SNI                string   `json:"sni,omitempty"`
	SubjectAltNames    []string `json:"subject_alt_names,omitempty"`
	CredentialName     string   `json:"credential_name,omitempty"`
	ClientCertificate  string   `json:"client_certificate,omitempty"`
	PrivateKey         string   `json:"private_key,omitempty"` // a path, never the key
	CACertificates     string   `json:"ca_certificates,omitempty"`
	InsecureSkipVerify bool     `json:"insecure_skip_verify,omitempty"`
	// Unsupported says why the gateway cannot originate here (and so
	// refuses the traffic).
	Unsupported string `json:"unsupported,omitempty"`
}

// EntryView is one valid ServiceEntry.
type EntryView struct {
	Ref        RefView  `json:"ref"`
	Hosts      []string `json:"hosts"`
	Addresses  []string `json:"addresses,omitempty"`
	Ports      []string `json:"ports"` // "443/TLS https"
	Resolution string   `json:"resolution"`
	Location   string   `json:"location,omitempty"`
	Endpoints  []string `json:"endpoints,omitempty"`
	ExportTo   []string `json:"export_to,omitempty"`
}

// RuleView is one DestinationRule.
type RuleView struct {
	Ref  RefView `json:"ref"`
	Host string  `json:"host"`
	// Mode is the rule's top-level TLS mode, empty without one.
	Mode string `json:"mode,omitempty"`
	// PortModes are the port-level TLS modes, "8443": "MUTUAL".
	PortModes map[string]string `json:"port_modes,omitempty"`
	// Invalid says why a rule that asks for origination is invalid (its
	// host's traffic is refused until it is fixed).
	Invalid string `json:"invalid,omitempty"`
}

// ProblemView is one problem with a resource.
type ProblemView struct {
	Ref   RefView `json:"ref"`
	Field string  `json:"field,omitempty"`
	// Code says what kind of finding it is (serviceentry.ProblemCode).
	Code     string `json:"code"`
	Message  string `json:"message"`
	Severity string `json:"severity"`
	// Error is the whole problem in one line, as egressd logs it.
	Error string `json:"error"`
}

// RefView names a resource.
type RefView struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
}

// NewAllowlistView builds the JSON view of a; a nil a gives an empty view
// with Loaded false. Slices are never nil, so the JSON has [] not null.
func NewAllowlistView(a *serviceentry.Allowlist) AllowlistView {
	v := AllowlistView{Hosts: []HostView{}, Entries: []EntryView{}, Rules: []RuleView{}, Problems: []ProblemView{}}
	if a == nil {
		return v
	}
	v.Loaded, v.Version = true, a.Version()
	for _, h := range a.Hosts() {
		hv := HostView{Name: h.Name, Wildcard: h.Wildcard, Ports: []PortView{}}
		for _, p := range h.Ports {
			pv := PortView{Number: p.Number, Protocol: string(p.Protocol), Name: p.Name, TargetPort: p.TargetPort}
			if e := p.Entry; e != nil {
				pv.ServiceEntry, pv.File, pv.Line = e.Ref.String(), e.Ref.File, e.Ref.Line
				pv.Resolution, pv.Location = string(e.Resolution), string(e.Location)
			}
			if o := p.TLS; o != nil {
				pv.TLS = &TLSView{
					Mode:               string(o.Mode),
					Rule:               o.Rule.String(),
					SNI:                o.SNI,
					SubjectAltNames:    o.SubjectAltNames,
					CredentialName:     o.CredentialName,
					ClientCertificate:  o.ClientCertificate,
					PrivateKey:         o.PrivateKey,
					CACertificates:     o.CACertificates,
					InsecureSkipVerify: o.InsecureSkipVerify,
					Unsupported:        o.Unsupported,
				}
			}
			hv.Ports = append(hv.Ports, pv)
		}
		v.Hosts = append(v.Hosts, hv)
	}
	for _, e := range a.Entries() {
		ev := EntryView{
			Ref: refView(e.Ref), Hosts: e.Hosts, Ports: []string{},
			Resolution: string(e.Resolution), Location: string(e.Location), ExportTo: e.ExportTo,
		}
		for _, p := range e.Addresses {
			ev.Addresses = append(ev.Addresses, p.String())
		}
		for _, p := range e.Ports {
			s := portString(p.Number, string(p.Protocol))
			if p.Name != "" {
				s += " " + p.Name
			}
			ev.Ports = append(ev.Ports, s)
		}
		for _, ep := range e.Endpoints {
			ev.Endpoints = append(ev.Endpoints, ep.Address)
		}
		v.Entries = append(v.Entries, ev)
	}
	for _, r := range a.Rules() {
		rv := RuleView{Ref: refView(r.Ref), Host: r.Host, Invalid: r.Invalid}
		if r.TLS != nil {
			rv.Mode = string(r.TLS.Mode)
		}
		for n, t := range r.PortTLS {
			if t == nil {
				continue
			}
			if rv.PortModes == nil {
				rv.PortModes = map[string]string{}
			}
			rv.PortModes[uitoa(n)] = string(t.Mode)
		}
		v.Rules = append(v.Rules, rv)
	}
	for _, p := range a.Problems() {
		if p.Severity == serviceentry.SeverityError {
			v.Errors++
		}
		v.Problems = append(v.Problems, ProblemView{
			Ref: refView(p.Ref), Field: p.Field, Code: string(p.Code), Message: p.Message, Severity: string(p.Severity), Error: p.Error(),
		})
	}
	return v
}

func refView(r serviceentry.Ref) RefView {
	return RefView{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, File: r.File, Line: r.Line}
}

func portString(n uint32, protocol string) string { return uitoa(n) + "/" + protocol }

func uitoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
