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
	// Sidecar is the resource's spec, set when Ref.Kind is KindSidecar.
	Sidecar *networkingv1alpha3.Sidecar
	// VirtualService is the resource's spec, set when Ref.Kind is
	// KindVirtualService.
	VirtualService *networkingv1alpha3.VirtualService
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
	"Telemetry":             true,
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
	// The documents of a file are parsed and turned into objects on every
	// core (YAML parsing is most of the work for a file of 10,000
	// ServiceEntries); their results are put back in document order.
	workers := max(1, runtime.GOMAXPROCS(0))
	chunks := groupChunks(splitDocuments(data), 4*workers, 32<<10)
	results := make([]*chunkResult, len(chunks))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(chunks), workers) {
		wg.Go(func() {
			for i := range next {
				results[i] = decodeChunk(file, chunks[i])
			}
		})
	}
	for i := range chunks {
		next <- i
	}
	close(next)
	wg.Wait()
	d := &decoder{file: file}
	for _, r := range results {
		d.objects = append(d.objects, r.objects...)
		d.problems = append(d.problems, r.problems...)
		d.failed = append(d.failed, r.failed...)
		if r.syntax != nil {
			// A syntax error ends the file: nothing after it is read.
			d.problems = append(d.problems, *r.syntax)
			break
		}
	}
	return d
}

// chunk is a run of whole documents of a file, from line (0-based) on.
type chunk struct {
	data []byte
	line int
}

// chunkResult is what one chunk decoded to; syntax is its YAML syntax
// error, if it has one (the documents before it are kept).
type chunkResult struct {
	decoder
	syntax *Problem
}

// splitDocuments cuts a YAML stream into chunks at its document markers:
// a line that is "---" alone or followed by a space (the rest of the line
// belongs to the next document). A marker at the start of a line always
// begins a document, inside a block scalar too, and cannot occur inside a
// quoted one, so every chunk holds whole documents. A stream with
// directives ("%YAML") is not cut: a directive belongs to the document
// after the marker.
func splitDocuments(data []byte) []chunk {
	if bytes.HasPrefix(data, []byte("%")) || bytes.Contains(data, []byte("\n%")) {
		return []chunk{{data: data}}
	}
	var out []chunk
	start, startLine, line := 0, 0, 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i
		}
		l := data[i:end]
		if i > start && bytes.HasPrefix(l, []byte("---")) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r') {
			out = append(out, chunk{data: data[start:i], line: startLine})
			start, startLine = i, line
		}
		line++
		i = end + 1
	}
	return append(out, chunk{data: data[start:], line: startLine})
}

// groupChunks joins runs of adjacent chunks into about n groups of
// similar size, none smaller than minBytes unless it is the last: a
// decoder per document costs more than the work it spreads.
func groupChunks(chunks []chunk, n, minBytes int) []chunk {
	total := 0
	for _, c := range chunks {
		total += len(c.data)
	}
	target := max(minBytes, total/max(1, n))
	var out []chunk
	for _, c := range chunks {
		if k := len(out) - 1; k >= 0 && len(out[k].data) < target {
			// Adjacent chunks are adjacent slices of one stream.
			out[k].data = out[k].data[:len(out[k].data)+len(c.data)]
			continue
		}
		out = append(out, c)
	}
	return out
}

// decodeChunk decodes the documents of one chunk, their lines counted from
// the file's start.
func decodeChunk(file string, c chunk) *chunkResult {
	r := &chunkResult{decoder: decoder{file: file}}
	dec := yaml.NewDecoder(bytes.NewReader(c.data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			p := syntaxProblem(file, err)
			if p.Ref.Line > 0 {
				p.Ref.Line += c.line
			}
			r.syntax = &p
			return r
		}
		if len(doc.Content) == 0 || strict.IsNull(doc.Content[0]) {
			continue
		}
		root := doc.Content[0]
		shiftLines(root, c.line)
		if deeperThan(root, MaxDepth) {
			r.problems = append(r.problems, Problem{Ref: Ref{File: file, Line: root.Line}, Code: CodeDocumentTooDeep,
				Message:  fmt.Sprintf("the document is nested deeper than %d levels, which no Istio resource needs; it is skipped", MaxDepth),
				Severity: SeverityError})
			continue
		}
		r.resource(root)
	}
}

// shiftLines adds offset to the line of every node below n.
func shiftLines(n *yaml.Node, offset int) {
	if offset == 0 {
		return
	}
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x.Line += offset
		stack = append(stack, x.Content...)
	}
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
	case apiVersion != "" && !strings.HasSuffix(apiGroup(apiVersion), "istio.io"):
		// A Kubernetes Service, Endpoints, Deployment... kept next to the
		// ServiceEntries: not for egressd, and no mistake either.
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.warnf(CodeKindNotHandled, "kind", "%s (apiVersion %q) is not an Istio resource; skipped (egressd reads ServiceEntry, DestinationRule and VirtualService, networking.istio.io/v1, AuthorizationPolicy and PeerAuthentication, security.istio.io/v1)", kind, apiVersion)
		return
	default:
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.errorf(CodeUnknownKind, "kind", "%s (apiVersion %q) is not a kind egressd reads; egressd reads ServiceEntry, DestinationRule and VirtualService (networking.istio.io/v1), AuthorizationPolicy and PeerAuthentication (security.istio.io/v1): remove it from the input", kind, apiVersion)
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
