package serviceentry

import (
	"fmt"
	"net/netip"
)

// Protocol is a ServiceEntry port protocol, upper-cased as Istio spells it.
type Protocol string

// The port protocols egressd understands. Istio's names; matching is
// case-insensitive at decode time.
const (
	ProtocolHTTP    Protocol = "HTTP"
	ProtocolHTTPS   Protocol = "HTTPS"
	ProtocolHTTP2   Protocol = "HTTP2"
	ProtocolGRPC    Protocol = "GRPC"
	ProtocolGRPCWeb Protocol = "GRPC-WEB"
	ProtocolTLS     Protocol = "TLS"
	ProtocolTCP     Protocol = "TCP"
	ProtocolMongo   Protocol = "MONGO"
	ProtocolMySQL   Protocol = "MYSQL"
	ProtocolRedis   Protocol = "REDIS"
)

// Class is how the gateway recognises traffic of a protocol.
type Class int

// Traffic classes: HTTP is matched by Host header, TLS by SNI, TCP by
// destination address and port.
const (
	ClassTCP Class = iota
	ClassHTTP
	ClassTLS
)

func (c Class) String() string {
	switch c {
	case ClassHTTP:
		return "http"
	case ClassTLS:
		return "tls"
	default:
		return "tcp"
	}
}

// Class reports how the gateway matches traffic of protocol p.
func (p Protocol) Class() Class {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolGRPCWeb:
		return ClassHTTP
	case ProtocolHTTPS, ProtocolTLS:
		return ClassTLS
	default:
		return ClassTCP
	}
}

// UpstreamHTTP2 reports whether the upstream speaks HTTP/2 (h2c) for p.
func (p Protocol) UpstreamHTTP2() bool {
	return p == ProtocolHTTP2 || p == ProtocolGRPC
}

// Resolution is a ServiceEntry's resolution mode.
type Resolution string

// Resolution modes, as Istio names them.
const (
	ResolutionNone          Resolution = "NONE"
	ResolutionStatic        Resolution = "STATIC"
	ResolutionDNS           Resolution = "DNS"
	ResolutionDNSRoundRobin Resolution = "DNS_ROUND_ROBIN"
)

// Location is a ServiceEntry's location.
type Location string

// Locations, as Istio names them.
const (
	LocationMeshExternal Location = "MESH_EXTERNAL"
	LocationMeshInternal Location = "MESH_INTERNAL"
)

// Ref names one resource and where it came from.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// File is the file the resource was read from ("" for Kubernetes).
	File string `json:"file,omitempty"`
	// Line is the first line of the resource's YAML document (0 if unknown).
	Line int `json:"line,omitempty"`
}

// String returns "namespace/name".
func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Port is one validated ServiceEntry port.
type Port struct {
	Number     uint32   `json:"number"`
	Protocol   Protocol `json:"protocol"`
	Name       string   `json:"name"`
	TargetPort uint32   `json:"targetPort,omitempty"`
}

// Endpoint is one validated ServiceEntry endpoint (a WorkloadEntry).
type Endpoint struct {
	// Address is an IP address (STATIC) or a DNS name (DNS resolutions).
	Address string `json:"address"`
	// Ports maps port names to the endpoint's port for that service port.
	Ports  map[string]uint32 `json:"ports,omitempty"`
	Weight uint32            `json:"weight,omitempty"`
}

// PortFor returns the port to connect to on e for service port p:
// the endpoint's own mapping by port name, else p's targetPort, else p's number.
func (e Endpoint) PortFor(p Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	return p.UpstreamPort()
}

// UpstreamPort is the port the gateway connects to upstream: targetPort if
// set, else the service port number.
func (p Port) UpstreamPort() uint32 {
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// Entry is one ServiceEntry that passed validation, normalised: hosts are
// lower-case, without trailing dot, IDNs in Punycode.
type Entry struct {
	Ref              Ref               `json:"ref"`
	Hosts            []string          `json:"hosts"`
	Addresses        []netip.Prefix    `json:"addresses,omitempty"`
	Ports            []Port            `json:"ports"`
	Location         Location          `json:"location"`
	Resolution       Resolution        `json:"resolution"`
	Endpoints        []Endpoint        `json:"endpoints,omitempty"`
	ExportTo         []string          `json:"exportTo,omitempty"`
	SubjectAltNames  []string          `json:"subjectAltNames,omitempty"`
	WorkloadSelector map[string]string `json:"workloadSelector,omitempty"`
}

// Severity says whether a Problem dropped something or is only advice.
type Severity string

// Severities of a Problem.
const (
	// SeverityError: the resource (or the named part of it) was skipped.
	SeverityError Severity = "error"
	// SeverityWarning: the resource applies, but something looks wrong.
	SeverityWarning Severity = "warning"
)

// Problem is one finding about one resource: an invalid field, a conflict,
// an unsupported kind. It names the file, the resource and the field, and
// says what kind of finding it is in Code, for machines (the Kubernetes
// status reason, tests).
type Problem struct {
	Ref      Ref         `json:"ref"`
	Field    string      `json:"field,omitempty"`
	Code     ProblemCode `json:"code"`
	Message  string      `json:"message"`
	Severity Severity    `json:"severity"`
}

// ProblemCode is the kind of a Problem: a stable, CamelCase name.
type ProblemCode string

// Problem codes. Those of the strict decoder (strict.Code: UnknownField,
// WrongType, InvalidEnum, OutOfRange, DuplicateField, EmptyValue,
// UnsupportedYAML) are Problem codes too.
const (
	// Reading a file.
	CodeUnreadableFile  ProblemCode = "UnreadableFile"  // the file cannot be read
	CodeFileTooLarge    ProblemCode = "FileTooLarge"    // more than MaxFileBytes
	CodeInvalidYAML     ProblemCode = "InvalidYAML"     // a syntax error: the rest of the file is not read
	CodeDocumentTooDeep ProblemCode = "DocumentTooDeep" // nested deeper than MaxDepth
	CodeNotAResource    ProblemCode = "NotAResource"    // not a mapping with apiVersion, kind, metadata, spec
	// Kinds and metadata.
	CodeUnknownKind       ProblemCode = "UnknownKind"       // a kind egressd does not read
	CodeKindNotHandled    ProblemCode = "KindNotHandled"    // an Istio kind egressd skips (warning)
	CodeInvalidAPIVersion ProblemCode = "InvalidAPIVersion" // missing, or not one the kind is served at
	CodeInvalidMetadata   ProblemCode = "InvalidMetadata"   // metadata.name or namespace
	// Validation of a spec.
	CodeInvalidSpec ProblemCode = "InvalidSpec" // a value Istio's validation refuses
	CodeSpecWarning ProblemCode = "SpecWarning" // valid, but likely not what was meant (warning)
	// Compiling the allowlist.
	CodeDuplicateName      ProblemCode = "DuplicateName"      // two resources of one kind, namespace and name
	CodePortConflict       ProblemCode = "PortConflict"       // a port claimed with another protocol or entry
	CodeHostConflict       ProblemCode = "HostConflict"       // a host and port another entry allows already
	CodeRuleConflict       ProblemCode = "RuleConflict"       // two DestinationRules for one host
	CodeRuleUnused         ProblemCode = "RuleUnused"         // a DestinationRule no listed host uses
	CodeOriginationIgnored ProblemCode = "OriginationIgnored" // TLS origination asked where it does not apply
	CodeOriginationBlocked ProblemCode = "OriginationBlocked" // TLS origination the gateway cannot do: traffic refused
	CodeRouteIgnored       ProblemCode = "RouteIgnored"       // a VirtualService route the gateway cannot apply
	// CodeFailClosed says what the gateway does with an invalid resource
	// kept in a fail-closed form.
	CodeFailClosed ProblemCode = "FailClosed"
)

// Error formats the problem as
// "file:line: Kind namespace/name: field: message".
func (p Problem) Error() string {
	loc := ""
	if p.Ref.File != "" {
		loc = p.Ref.File
		if p.Ref.Line > 0 {
			loc = fmt.Sprintf("%s:%d", loc, p.Ref.Line)
		}
		loc += ": "
	}
	res := ""
	if p.Ref.Kind != "" || p.Ref.Name != "" {
		kind := p.Ref.Kind
		if kind == "" {
			kind = "resource"
		}
		res = kind + " " + p.Ref.String() + ": "
	}
	field := ""
	if p.Field != "" {
		field = p.Field + ": "
	}
	return loc + res + field + p.Message
}
