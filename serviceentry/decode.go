package serviceentry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/egressd/egressd/serviceentry/strict"
)

// Object is one decoded Istio resource, before validation.
type Object struct {
	// Ref names the resource: Kind, Namespace ("default" when
	// metadata.namespace is empty), Name, File, and Line, the first line of
	// the resource in its file (1-based).
	Ref Ref
	// APIVersion is the resource's apiVersion, e.g. "networking.istio.io/v1".
	APIVersion string
	// ServiceEntry is the resource's spec, set when Ref.Kind is
	// KindServiceEntry.
	ServiceEntry *networkingv1alpha3.ServiceEntry
	// DestinationRule is the resource's spec, set when Ref.Kind is
	// KindDestinationRule.
	DestinationRule *networkingv1alpha3.DestinationRule
	// AuthorizationPolicy is the resource's spec, set when Ref.Kind is
	// KindAuthorizationPolicy.
	AuthorizationPolicy *securityv1beta1.AuthorizationPolicy
	// PeerAuthentication is the resource's spec, set when Ref.Kind is
	// KindPeerAuthentication.
	PeerAuthentication *securityv1beta1.PeerAuthentication
}

// KindServiceEntry is the kind of Istio's ServiceEntry resource.
const KindServiceEntry = "ServiceEntry"

// KindDestinationRule is the kind of Istio's DestinationRule resource.
const KindDestinationRule = "DestinationRule"

// KindAuthorizationPolicy is the kind of Istio's AuthorizationPolicy
// resource (security.istio.io).
const KindAuthorizationPolicy = "AuthorizationPolicy"

// KindPeerAuthentication is the kind of Istio's PeerAuthentication resource
// (security.istio.io).
const KindPeerAuthentication = "PeerAuthentication"

// DefaultNamespace is the namespace of a resource whose metadata.namespace
// is empty, as kubectl would apply it.
const DefaultNamespace = "default"

// ignoredKinds are Istio kinds that egressd does not handle yet. They are
// reported as a warning and skipped, so that a folder of Istio
// configuration can be pointed at egressd as it is.
var ignoredKinds = map[string]bool{
	"EnvoyFilter":           true,
	"Gateway":               true,
	"ProxyConfig":           true,
	"RequestAuthentication": true,
	"Sidecar":               true,
	"Telemetry":             true,
	"VirtualService":        true,
	"WasmPlugin":            true,
	"WorkloadEntry":         true,
	"WorkloadGroup":         true,
}

// topLevelFields are the fields a resource of a kind egressd reads may
// have.
var topLevelFields = []string{"apiVersion", "kind", "metadata", "spec", "status"}

// Decode splits data (YAML, multi-document with "---", or JSON) into
// resources. file names the source in Refs and Problems.
//
// It returns the ServiceEntries, DestinationRules, AuthorizationPolicies
// and PeerAuthentications that decoded cleanly, in file order. A resource with a
// decoding error (unknown field, bad enum value, wrong type, invalid name,
// unknown kind) is left out with an error Problem; an Istio kind that egressd
// does not handle yet is left out with a warning. A "kind: List" (or any
// "*List") is expanded into its items. Empty documents are skipped. A YAML
// syntax error ends the file: resources before it are returned, and one
// Problem gives the line the YAML parser reports (which may be the line
// before the mistake).
func Decode(file string, data []byte) ([]Object, []Problem) {
	d := decode(file, data)
	return d.objects, d.problems
}

// decode is Decode, keeping the AuthorizationPolicies that failed to
// decode in d.failed.
func decode(file string, data []byte) *decoder {
	if len(data) > MaxFileBytes {
		return &decoder{file: file, problems: []Problem{tooLarge(file, int64(len(data)))}}
	}
	// The YAML stream is parsed in order here, while other goroutines turn
	// the documents into objects (about 40 % of the work for a file of
	// 10,000 ServiceEntries); their results are put back in document order.
	type job struct {
		doc *yaml.Node
		out chan *decoder
	}
	jobs := make(chan job, 64)
	var workers sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)-1) {
		workers.Go(func() {
			for j := range jobs {
				one := &decoder{file: file}
				one.resource(j.doc)
				j.out <- one
			}
		})
	}
	var pending []chan *decoder
	var syntax *Problem
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p := syntaxProblem(file, err)
			syntax = &p
			break
		}
		if len(doc.Content) == 0 || strict.IsNull(doc.Content[0]) {
			continue
		}
		if deeperThan(doc.Content[0], MaxDepth) {
			pending = append(pending, failedDocument(file, doc.Content[0].Line,
				fmt.Sprintf("the document is nested deeper than %d levels, which no Istio resource needs; it is skipped", MaxDepth)))
			continue
		}
		out := make(chan *decoder, 1)
		pending = append(pending, out)
		jobs <- job{doc: doc.Content[0], out: out}
	}
	close(jobs)
	d := &decoder{file: file}
	for _, out := range pending {
		one := <-out
		d.objects = append(d.objects, one.objects...)
		d.problems = append(d.problems, one.problems...)
		d.failed = append(d.failed, one.failed...)
	}
	workers.Wait()
	if syntax != nil {
		d.problems = append(d.problems, *syntax)
	}
	return d
}

// Limits on untrusted input. A file larger than MaxFileBytes is not read
// at all; a document nested deeper than MaxDepth is skipped. YAML aliases
// and merge keys are refused wherever they appear, so no document expands
// beyond its size.
const (
	MaxFileBytes = 64 << 20
	MaxDepth     = 64
)

// tooLarge is the Problem of a file over MaxFileBytes.
func tooLarge(file string, size int64) Problem {
	return Problem{
		Ref:  Ref{File: file},
		Code: CodeFileTooLarge,
		Message: fmt.Sprintf("the file is %d bytes, more than the %d egressd reads (%d MiB); split it into several files",
			size, MaxFileBytes, MaxFileBytes>>20),
		Severity: SeverityError,
	}
}

// failedDocument is a finished decoder result for a document that cannot
// be decoded: one error at line.
func failedDocument(file string, line int, msg string) chan *decoder {
	out := make(chan *decoder, 1)
	out <- &decoder{file: file, problems: []Problem{{Ref: Ref{File: file, Line: line}, Code: CodeDocumentTooDeep, Message: msg, Severity: SeverityError}}}
	return out
}

// deeperThan reports whether the node tree below n is more than max
// levels deep.
func deeperThan(n *yaml.Node, max int) bool {
	type item struct {
		n     *yaml.Node
		depth int
	}
	stack := []item{{n, 1}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.depth > max {
			return true
		}
		for _, c := range it.n.Content {
			stack = append(stack, item{c, it.depth + 1})
		}
	}
	return false
}

// ReadFile reads a configuration file, refusing one larger than
// MaxFileBytes (with the Problem's message) before reading it whole.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > MaxFileBytes {
		return nil, tooLargeError{tooLarge(path, info.Size())}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, tooLargeError{tooLarge(path, int64(len(data)))}
	}
	return data, nil
}

// tooLargeError is ReadFile's error for a file over MaxFileBytes.
type tooLargeError struct{ p Problem }

func (e tooLargeError) Error() string { return e.p.Message }

// ReadProblem is the Problem of a file ReadFile could not read.
func ReadProblem(path string, err error) Problem {
	var tl tooLargeError
	if errors.As(err, &tl) {
		return tl.p
	}
	return Problem{Ref: Ref{File: path}, Code: CodeUnreadableFile, Severity: SeverityError, Message: fmt.Sprintf("reading file: %v", err)}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxProblem turns a YAML parser error into a Problem with its line.
func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return Problem{
		Ref:      Ref{File: file, Line: line},
		Code:     CodeInvalidYAML,
		Message:  "invalid YAML: " + msg + "; nothing after this point in the file was read",
		Severity: SeverityError,
	}
}

// decoder collects the objects and problems of one file.
type decoder struct {
	file     string
	objects  []Object
	problems []Problem
	// failed holds the AuthorizationPolicies left out for decoding errors,
	// with what salvagePolicy could read of them, so that ParseConfig can
	// keep them in a fail-closed form.
	failed []failedPolicy
}

// failedPolicy is an AuthorizationPolicy that failed to decode, with what
// salvagePolicy could read of it.
type failedPolicy struct {
	Object
	// selectorLost is true when the policy has a selector that could not
	// be read, so the salvaged policy selects every workload.
	selectorLost bool
}

// resource decodes one resource (or List of resources) from a document or
// list item.
func (d *decoder) resource(n *yaml.Node) {
	r := &resourceDecoder{ref: Ref{File: d.file, Line: n.Line}}
	defer func() {
		// Problems found before the name was read get the whole Ref too.
		for i := range r.problems {
			r.problems[i].Ref = r.ref
		}
		d.problems = append(d.problems, r.problems...)
	}()

	if n.Kind == yaml.AliasNode {
		r.errorf(ProblemCode(strict.CodeUnsupportedYAML), "", "YAML aliases are not supported; write the resource out in full")
		return
	}
	if n.Kind != yaml.MappingNode {
		r.errorf(CodeNotAResource, "", "a resource must be a mapping with apiVersion, kind, metadata and spec; found %s", strict.Describe(n))
		return
	}
	fields := r.fields(n, "")
	apiVersion, apiVersionOK := r.str(fields["apiVersion"], "apiVersion")
	kind, kindOK := r.str(fields["kind"], "kind")
	r.ref.Kind = kind

	if items, ok := fields["items"]; ok && (kind == "List" || strings.HasSuffix(kind, "List")) {
		switch {
		case strict.IsNull(items):
		case items.Kind != yaml.SequenceNode:
			r.ref.Kind = ""
			r.errorf(ProblemCode(strict.CodeWrongType), "items", "expected a list of resources, found %s", strict.Describe(items))
		default:
			for _, item := range items.Content {
				d.resource(item)
			}
		}
		return
	}

	info, known := LookupKind(kind)
	// Read the name for the Ref of every kind, but report problems with it
	// only for the kinds egressd reads.
	before := len(r.problems)
	r.metadata(fields["metadata"])
	switch {
	case kind == "":
		r.problems = r.problems[:before]
		if kindOK {
			r.errorf(CodeUnknownKind, "kind", "missing; set kind: ServiceEntry, DestinationRule, AuthorizationPolicy or PeerAuthentication")
		}
		return
	case known:
	case ignoredKinds[kind] && strings.HasSuffix(apiGroup(apiVersion), "istio.io"):
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.warnf(CodeKindNotHandled, "", "kind %s is not handled yet; ignored", kind)
		return
	default:
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.errorf(CodeUnknownKind, "kind", "%s (apiVersion %q) is not a kind egressd reads; egressd reads ServiceEntry and DestinationRule (networking.istio.io/v1), AuthorizationPolicy and PeerAuthentication (security.istio.io/v1): remove it from the input", kind, apiVersion)
		return
	}

	versions := info.APIVersions
	if apiVersion == "" && apiVersionOK {
		r.errorf(CodeInvalidAPIVersion, "apiVersion", "missing; set apiVersion: %s", versions[0])
	} else if apiVersion != "" && !slices.Contains(versions, apiVersion) {
		others := make([]string, 0, len(versions)-1)
		for _, v := range versions[1:] {
			others = append(others, v[strings.LastIndexByte(v, '/')+1:])
		}
		r.errorf(CodeInvalidAPIVersion, "apiVersion", "%q is not an API version of %s; use %s (%s %s accepted too)", apiVersion, kind, versions[0], joinFields(others), isAre(len(others)))
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(topLevelFields, k) {
			r.errorf(ProblemCode(strict.CodeUnknownField), k, "unknown field %q; %s", k, strict.Suggest(k, topLevelFields))
		}
	}

	o := Object{Ref: r.ref, APIVersion: apiVersion}
	spec := info.NewSpec(&o)
	if n := fields["spec"]; n != nil && !strict.IsNull(n) {
		r.mistakes(strict.Decode(n, spec, "spec"))
	}
	if hasError(r.problems) {
		// Keep what fail-closed handling needs of an Istio policy; another
		// project's AuthorizationPolicy (Linkerd has one) is only reported.
		if g := apiGroup(apiVersion); kind == KindAuthorizationPolicy && (g == "security.istio.io" || apiVersion == "") {
			var lost bool
			o.AuthorizationPolicy, lost = salvagePolicy(fields["spec"])
			d.failed = append(d.failed, failedPolicy{Object: o, selectorLost: lost})
		}
		return
	}
	d.objects = append(d.objects, o)
}

// metadata reads metadata.name and metadata.namespace into the Ref and
// checks them as Kubernetes would.
func (r *resourceDecoder) metadata(n *yaml.Node) {
	r.ref.Namespace = DefaultNamespace
	if n == nil || strict.IsNull(n) {
		r.errorf(CodeInvalidMetadata, "metadata.name", "missing; every resource needs a name")
		return
	}
	if n.Kind != yaml.MappingNode {
		r.errorf(CodeInvalidMetadata, "metadata", "expected a mapping with name and namespace, found %s", strict.Describe(n))
		return
	}
	fields := r.fields(n, "metadata")
	if ns := fields["namespace"]; ns != nil && ns.Kind == yaml.ScalarNode && ns.Tag == "!!str" && ns.Value != "" {
		r.ref.Namespace = ns.Value
	}
	name, ok := r.str(fields["name"], "metadata.name")
	r.ref.Name = name
	switch {
	case !ok:
	case name == "":
		if fields["generateName"] != nil {
			r.errorf(CodeInvalidMetadata, "metadata.name", "generateName is not supported; set metadata.name")
		} else {
			r.errorf(CodeInvalidMetadata, "metadata.name", "missing; every resource needs a name")
		}
	case !isDNS1123Subdomain(name):
		r.errorf(CodeInvalidMetadata, "metadata.name", "%q is not a valid name: use at most 253 lower-case letters, digits, \"-\" and \".\", starting and ending with a letter or digit", name)
	}
	if ns, ok := r.str(fields["namespace"], "metadata.namespace"); ok && ns != "" {
		r.ref.Namespace = ns
		if !IsDNS1123Label(ns) {
			r.errorf(CodeInvalidMetadata, "metadata.namespace", "%q is not a valid namespace: use at most 63 lower-case letters, digits and \"-\", starting and ending with a letter or digit", ns)
		}
	}
}

// resourceDecoder decodes one resource and collects its problems.
type resourceDecoder struct {
	ref      Ref
	problems []Problem
}

func (r *resourceDecoder) errorf(code ProblemCode, field, format string, args ...any) {
	r.problems = append(r.problems, Problem{Ref: r.ref, Field: field, Code: code, Message: fmt.Sprintf(format, args...), Severity: SeverityError})
}

func (r *resourceDecoder) warnf(code ProblemCode, field, format string, args ...any) {
	r.problems = append(r.problems, Problem{Ref: r.ref, Field: field, Code: code, Message: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

// mistakes records the strict decoder's mistakes as errors; it reports
// whether there were none.
func (r *resourceDecoder) mistakes(errs []strict.Error) bool {
	for _, e := range errs {
		r.errorf(ProblemCode(e.Code), e.Field, "%s", e.Message)
	}
	return len(errs) == 0
}

func (r *resourceDecoder) fields(n *yaml.Node, path string) map[string]*yaml.Node {
	f, errs := strict.Fields(n, path)
	r.mistakes(errs)
	return f
}

func (r *resourceDecoder) str(n *yaml.Node, path string) (string, bool) {
	v, errs := strict.String(n, path)
	return v, r.mistakes(errs)
}

// apiGroup returns the group of an apiVersion: "networking.istio.io" for
// "networking.istio.io/v1", "" for "v1".
func apiGroup(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}

func orUnknown(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

func hasError(ps []Problem) bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// IsDNS1123Label reports whether s is a DNS-1123 label as Kubernetes checks
// it (namespaces, port names): 1-63 lower-case letters, digits and "-",
// starting and ending with a letter or digit.
func IsDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > maxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNS1123Subdomain reports whether s is a DNS-1123 subdomain as Kubernetes
// checks it (resource names): at most 253 characters, dot-separated
// non-empty parts of lower-case letters, digits and "-", each starting and
// ending with a letter or digit.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > maxHostLen {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || part[0] == '-' || part[len(part)-1] == '-' {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
