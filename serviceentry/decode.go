package serviceentry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
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

// networkingAPIVersions are the apiVersions Istio serves ServiceEntry and
// DestinationRule at.
var networkingAPIVersions = []string{
	"networking.istio.io/v1",
	"networking.istio.io/v1beta1",
	"networking.istio.io/v1alpha3",
}

// securityAPIVersions are the apiVersions Istio serves AuthorizationPolicy
// and PeerAuthentication at.
var securityAPIVersions = []string{
	"security.istio.io/v1",
	"security.istio.io/v1beta1",
}

// readKinds are the kinds egressd reads, with the apiVersions each is
// served at (the first is the one to suggest).
var readKinds = map[string][]string{
	KindServiceEntry:        networkingAPIVersions,
	KindDestinationRule:     networkingAPIVersions,
	KindAuthorizationPolicy: securityAPIVersions,
	KindPeerAuthentication:  securityAPIVersions,
}

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
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
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
		Ref: Ref{File: file},
		Message: fmt.Sprintf("the file is %d bytes, more than the %d egressd reads (%d MiB); split it into several files",
			size, MaxFileBytes, MaxFileBytes>>20),
		Severity: SeverityError,
	}
}

// failedDocument is a finished decoder result for a document that cannot
// be decoded: one error at line.
func failedDocument(file string, line int, msg string) chan *decoder {
	out := make(chan *decoder, 1)
	out <- &decoder{file: file, problems: []Problem{{Ref: Ref{File: file, Line: line}, Message: msg, Severity: SeverityError}}}
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
		return nil, errors.New(tooLarge(path, info.Size()).Message)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, errors.New(tooLarge(path, int64(len(data))).Message)
	}
	return data, nil
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
		r.errorf("", "YAML aliases are not supported; write the resource out in full")
		return
	}
	if n.Kind != yaml.MappingNode {
		r.errorf("", "a resource must be a mapping with apiVersion, kind, metadata and spec; found %s", describe(n))
		return
	}
	fields := r.fields(n, "")
	apiVersion, apiVersionOK := r.str(fields["apiVersion"], "apiVersion")
	kind, kindOK := r.str(fields["kind"], "kind")
	r.ref.Kind = kind

	if items, ok := fields["items"]; ok && (kind == "List" || strings.HasSuffix(kind, "List")) {
		switch {
		case isNull(items):
		case items.Kind != yaml.SequenceNode:
			r.ref.Kind = ""
			r.errorf("items", "expected a list of resources, found %s", describe(items))
		default:
			for _, item := range items.Content {
				d.resource(item)
			}
		}
		return
	}

	// Read the name for the Ref of every kind, but report problems with it
	// only for the kinds egressd reads.
	before := len(r.problems)
	r.metadata(fields["metadata"])
	switch {
	case kind == "":
		r.problems = r.problems[:before]
		if kindOK {
			r.errorf("kind", "missing; set kind: ServiceEntry, DestinationRule, AuthorizationPolicy or PeerAuthentication")
		}
		return
	case readKinds[kind] != nil:
	case ignoredKinds[kind] && strings.HasSuffix(apiGroup(apiVersion), "istio.io"):
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.warnf("", "kind %s is not handled yet; ignored", kind)
		return
	default:
		r.problems = r.problems[:before]
		r.ref.Name = orUnknown(r.ref.Name)
		r.errorf("kind", "%s (apiVersion %q) is not a kind egressd reads; egressd reads ServiceEntry and DestinationRule (networking.istio.io/v1), AuthorizationPolicy and PeerAuthentication (security.istio.io/v1): remove it from the input", kind, apiVersion)
		return
	}

	versions := readKinds[kind]
	if apiVersion == "" && apiVersionOK {
		r.errorf("apiVersion", "missing; set apiVersion: %s", versions[0])
	} else if apiVersion != "" && !slices.Contains(versions, apiVersion) {
		others := make([]string, 0, len(versions)-1)
		for _, v := range versions[1:] {
			others = append(others, v[strings.LastIndexByte(v, '/')+1:])
		}
		r.errorf("apiVersion", "%q is not an API version of %s; use %s (%s %s accepted too)", apiVersion, kind, versions[0], joinFields(others), isAre(len(others)))
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(topLevelFields, k) {
			r.errorf(k, "unknown field %q; %s", k, suggest(k, topLevelFields))
		}
	}

	o := Object{Ref: r.ref, APIVersion: apiVersion}
	var spec proto.Message
	switch kind {
	case KindDestinationRule:
		o.DestinationRule = &networkingv1alpha3.DestinationRule{}
		spec = o.DestinationRule
	case KindAuthorizationPolicy:
		o.AuthorizationPolicy = &securityv1beta1.AuthorizationPolicy{}
		spec = o.AuthorizationPolicy
	case KindPeerAuthentication:
		o.PeerAuthentication = &securityv1beta1.PeerAuthentication{}
		spec = o.PeerAuthentication
	default:
		o.ServiceEntry = &networkingv1alpha3.ServiceEntry{}
		spec = o.ServiceEntry
	}
	if n := fields["spec"]; n != nil && !isNull(n) {
		before := len(r.problems)
		v := r.message(n, spec.ProtoReflect().Descriptor(), "spec")
		if len(r.problems) == before {
			if err := toProto(v, spec); err != nil {
				r.errorf("spec", "cannot decode: %v", err)
			}
		}
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
	if n == nil || isNull(n) {
		r.errorf("metadata.name", "missing; every resource needs a name")
		return
	}
	if n.Kind != yaml.MappingNode {
		r.errorf("metadata", "expected a mapping with name and namespace, found %s", describe(n))
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
			r.errorf("metadata.name", "generateName is not supported; set metadata.name")
		} else {
			r.errorf("metadata.name", "missing; every resource needs a name")
		}
	case !isDNS1123Subdomain(name):
		r.errorf("metadata.name", "%q is not a valid name: use at most 253 lower-case letters, digits, \"-\" and \".\", starting and ending with a letter or digit", name)
	}
	if ns, ok := r.str(fields["namespace"], "metadata.namespace"); ok && ns != "" {
		r.ref.Namespace = ns
		if !IsDNS1123Label(ns) {
			r.errorf("metadata.namespace", "%q is not a valid namespace: use at most 63 lower-case letters, digits and \"-\", starting and ending with a letter or digit", ns)
		}
	}
}

// resourceDecoder decodes one resource and collects its problems.
type resourceDecoder struct {
	ref      Ref
	problems []Problem
}

func (r *resourceDecoder) errorf(field, format string, args ...any) {
	r.problems = append(r.problems, Problem{Ref: r.ref, Field: field, Message: fmt.Sprintf(format, args...), Severity: SeverityError})
}

func (r *resourceDecoder) warnf(field, format string, args ...any) {
	r.problems = append(r.problems, Problem{Ref: r.ref, Field: field, Message: fmt.Sprintf(format, args...), Severity: SeverityWarning})
}

// fields returns the keys of mapping n with their values, reporting
// duplicate and non-string keys.
func (r *resourceDecoder) fields(n *yaml.Node, path string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.errorf(path, "a field name must be a plain string, found %s", describe(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			r.errorf(fieldPath(path, k.Value), "YAML merge keys are not supported; write the fields out in full")
			continue
		}
		if l, dup := lines[k.Value]; dup {
			r.errorf(fieldPath(path, k.Value), "set twice (lines %d and %d); keep one", l, k.Line)
			continue
		}
		lines[k.Value] = k.Line
		out[k.Value] = v
	}
	return out
}

// str reads a string scalar. A missing or null node gives "", true.
func (r *resourceDecoder) str(n *yaml.Node, path string) (string, bool) {
	if n == nil || isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		r.errorf(path, "expected a string, found %s%s", describe(n), quoteHint(n))
		return "", false
	}
	return n.Value, true
}

// message checks mapping n against message descriptor md and returns it as
// a JSON-ready value keyed by JSON field names. Problems name the field's
// path and say how to fix it.
func (r *resourceDecoder) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string) map[string]any {
	if n.Kind == yaml.AliasNode {
		r.errorf(path, "YAML aliases are not supported; write the value out in full")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.errorf(path, "expected a mapping, found %s", describe(n))
		return nil
	}
	out := map[string]any{}
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.Name]string{} // oneof -> the member set
	fields := md.Fields()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.errorf(path, "a field name must be a plain string, found %s", describe(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			r.errorf(fieldPath(path, k.Value), "YAML merge keys are not supported; write the fields out in full")
			continue
		}
		fd := fields.ByJSONName(k.Value)
		if fd == nil {
			fd = fields.ByTextName(k.Value)
		}
		if fd == nil {
			r.errorf(fieldPath(path, k.Value), "unknown field %q; %s", k.Value, suggest(k.Value, jsonNames(md)))
			continue
		}
		fpath := fieldPath(path, fd.JSONName())
		if prev, dup := seen[fd.Number()]; dup {
			r.errorf(fpath, "set twice (as %q and %q); keep one", prev, k.Value)
			continue
		}
		seen[fd.Number()] = k.Value
		if isNull(v) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, dup := oneofs[od.Name()]; dup {
				r.errorf(fpath, "cannot be set together with %q: set only one of %s", prev, strings.Join(oneofNames(od), ", "))
				continue
			}
			oneofs[od.Name()] = fd.JSONName()
		}
		if v.Kind == yaml.AliasNode {
			r.errorf(fpath, "YAML aliases are not supported; write the value out in full")
			continue
		}
		var val any
		var ok bool
		switch {
		case fd.IsMap():
			val, ok = r.mapValue(v, fd, fpath)
		case fd.IsList():
			val, ok = r.listValue(v, fd, fpath)
		default:
			val, ok = r.value(v, fd, fpath)
		}
		if ok {
			out[fd.JSONName()] = val
		}
	}
	return out
}

func (r *resourceDecoder) listValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		r.errorf(path, "expected a list, found %s%s", describe(n), listHint(n))
		return nil, false
	}
	out := make([]any, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		if isNull(item) {
			r.errorf(ipath, "empty list item; remove it")
			ok = false
			continue
		}
		v, iok := r.value(item, fd, ipath)
		ok = ok && iok
		out = append(out, v)
	}
	return out, ok
}

func (r *resourceDecoder) mapValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		r.errorf(path, "expected a mapping, found %s", describe(n))
		return nil, false
	}
	out := map[string]any{}
	lines := map[string]int{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			r.errorf(path, "a key must be a plain string, found %s", describe(k))
			ok = false
			continue
		}
		kpath := fmt.Sprintf("%s[%s]", path, k.Value)
		if kk := fd.MapKey().Kind(); kk != protoreflect.StringKind && kk != protoreflect.BoolKind {
			if _, err := strconv.ParseInt(k.Value, 10, 64); err != nil {
				r.errorf(kpath, "%q is not a number; the keys of %s are numbers", k.Value, path)
				ok = false
				continue
			}
		}
		if l, dup := lines[k.Value]; dup {
			r.errorf(kpath, "set twice (lines %d and %d); keep one", l, k.Line)
			ok = false
			continue
		}
		lines[k.Value] = k.Line
		if isNull(v) {
			r.errorf(kpath, "no value; give one or remove the key")
			ok = false
			continue
		}
		val, vok := r.value(v, fd.MapValue(), kpath)
		ok = ok && vok
		out[k.Value] = val
	}
	return out, ok
}

// value converts one singular value of fd's kind.
func (r *resourceDecoder) value(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (any, bool) {
	if n.Kind == yaml.AliasNode {
		r.errorf(path, "YAML aliases are not supported; write the value out in full")
		return nil, false
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if md := fd.Message(); strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			return r.wellKnownValue(n, md, path)
		}
		before := len(r.problems)
		m := r.message(n, fd.Message(), path)
		return m, len(r.problems) == before
	case protoreflect.EnumKind:
		return r.enumValue(n, fd.Enum(), path)
	case protoreflect.StringKind, protoreflect.BytesKind:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			r.errorf(path, "expected a string, found %s%s", describe(n), quoteHint(n))
			return nil, false
		}
		return n.Value, true
	case protoreflect.BoolKind:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			r.errorf(path, "expected true or false, found %s", describe(n))
			return nil, false
		}
		return n.Value == "true", true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			r.errorf(path, "expected a number, found %s%s", describe(n), unquoteHint(n))
			return nil, false
		}
		return f, true
	default:
		return r.intValue(n, fd.Kind(), path)
	}
}

func (r *resourceDecoder) intValue(n *yaml.Node, kind protoreflect.Kind, path string) (any, bool) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		r.errorf(path, "expected a whole number, found %s%s", describe(n), unquoteHint(n))
		return nil, false
	}
	if err := n.Decode(&i); err != nil {
		r.errorf(path, "%s is too large", n.Value)
		return nil, false
	}
	var lo, hi int64
	switch kind {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		lo, hi = 0, math.MaxUint32
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		lo, hi = math.MinInt32, math.MaxInt32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		lo, hi = 0, math.MaxInt64
	default:
		lo, hi = math.MinInt64, math.MaxInt64
	}
	switch {
	case i < 0 && lo == 0:
		r.errorf(path, "%d is negative; use a number from 0 to %d", i, hi)
		return nil, false
	case i < lo || i > hi:
		r.errorf(path, "%d is out of range; use a number from %d to %d", i, lo, hi)
		return nil, false
	}
	return i, true
}

func (r *resourceDecoder) enumValue(n *yaml.Node, ed protoreflect.EnumDescriptor, path string) (any, bool) {
	var names []string
	values := ed.Values()
	for i := 0; i < values.Len(); i++ {
		names = append(names, string(values.Get(i).Name()))
	}
	valid := "use one of " + strings.Join(names, ", ")
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		r.errorf(path, "expected one of %s, found %s", strings.Join(names, ", "), describe(n))
		return nil, false
	}
	if values.ByName(protoreflect.Name(n.Value)) != nil {
		return n.Value, true
	}
	for _, name := range names {
		if strings.EqualFold(name, n.Value) {
			r.errorf(path, "invalid value %q; values are upper case: write %s", n.Value, name)
			return nil, false
		}
	}
	s := closest(n.Value, names)
	if s == "" {
		s = containing(n.Value, names)
	}
	if s != "" {
		r.errorf(path, "invalid value %q; did you mean %s? (%s)", n.Value, s, valid)
		return nil, false
	}
	r.errorf(path, "invalid value %q; %s", n.Value, valid)
	return nil, false
}

// wellKnownValue converts a value of a well-known type. A wrapper
// (google.protobuf.BoolValue, UInt32Value, ...) is written as its bare
// value in JSON and YAML, so it is checked as one; other well-known types
// (Duration, Struct, ...) have their own JSON forms, which protojson checks
// here, so that a mistake names its own field.
func (r *resourceDecoder) wellKnownValue(n *yaml.Node, md protoreflect.MessageDescriptor, path string) (any, bool) {
	if strings.HasSuffix(string(md.Name()), "Value") && md.Fields().Len() == 1 {
		if inner := md.Fields().ByName("value"); inner != nil && !inner.IsList() && !inner.IsMap() {
			return r.value(n, inner, path)
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		r.errorf(path, "%v", err)
		return nil, false
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = protojson.Unmarshal(b, dynamicpb.NewMessage(md))
	}
	if err != nil {
		if md.FullName() == "google.protobuf.Duration" {
			r.errorf(path, "expected a duration in seconds with an \"s\" suffix, e.g. \"1.5s\" or \"30s\", found %s", describe(n))
		} else {
			r.errorf(path, "invalid %s: %v", md.Name(), err)
		}
		return nil, false
	}
	return v, true
}

// oneofNames lists the JSON names of a oneof's members.
func oneofNames(od protoreflect.OneofDescriptor) []string {
	fields := od.Fields()
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, fields.Get(i).JSONName())
	}
	return out
}

// toProto decodes the JSON-ready value v into m with protojson, strictly.
func toProto(v map[string]any, m proto.Message) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(b, m)
}

// jsonNames lists md's fields by their JSON names, in declaration order.
func jsonNames(md protoreflect.MessageDescriptor) []string {
	fields := md.Fields()
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, fields.Get(i).JSONName())
	}
	return out
}

// suggest says which field was probably meant, or lists the valid ones.
func suggest(name string, valid []string) string {
	if s := closest(name, valid); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "valid fields here: " + strings.Join(valid, ", ")
}

// closest returns the candidate nearest to s by edit distance (ignoring
// case, "_" and "-"), if it is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	norm := func(x string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(x))
	}
	best, bestDist := "", math.MaxInt
	for _, c := range candidates {
		if d := editDistance(norm(s), norm(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if len(s) <= 4 {
		limit = 1
	}
	if bestDist > limit {
		return ""
	}
	return best
}

// containing returns the one candidate that contains s, ignoring case, if s
// is long enough to mean something: "external" for "MESH_EXTERNAL".
func containing(s string, candidates []string) string {
	if len(s) < 3 {
		return ""
	}
	found := ""
	for _, c := range candidates {
		if strings.Contains(strings.ToUpper(c), strings.ToUpper(s)) {
			if found != "" {
				return ""
			}
			found = c
		}
	}
	return found
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a node holds, for "found ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	}
	return fmt.Sprintf("%q (%s)", n.Value, strings.TrimPrefix(n.Tag, "!!"))
}

// quoteHint suggests quoting a scalar that YAML read as a number or boolean
// where a string was expected.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!str" && n.Tag != "!!null" {
		return fmt.Sprintf("; quote it: %q", n.Value)
	}
	return ""
}

// unquoteHint suggests removing quotes around a number.
func unquoteHint(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return ""
	}
	if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
		return "; remove the quotes"
	}
	return ""
}

// listHint suggests list syntax for a single value given where a list is
// expected.
func listHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("; write a list, e.g. [%s]", n.Value)
	}
	return ""
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func fieldPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
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
