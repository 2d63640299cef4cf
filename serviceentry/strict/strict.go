// Package strict decodes YAML into protobuf messages strictly, for
// resources people write by hand: every unknown field, wrong type, bad
// enum value, duplicate key, null list item, YAML alias or merge key is a
// mistake with the path of its field and a way to fix it ("did you
// mean ...?", "quote it", "values are upper case"). It knows nothing of
// Istio's kinds: a message descriptor says what is valid.
package strict

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Error is one mistake: the path of its field ("spec.ports[0].number",
// "" for the whole value) and what is wrong, with how to fix it.
type Error struct {
	Code    Code
	Field   string
	Message string
}

// Code says what kind of mistake an Error is, for machines: stable names.
type Code string

// Mistake codes.
const (
	CodeUnknownField    Code = "UnknownField"    // a field the message does not have
	CodeWrongType       Code = "WrongType"       // a value of the wrong type (a string for a number, ...)
	CodeInvalidEnum     Code = "InvalidEnum"     // not one of an enum's values
	CodeOutOfRange      Code = "OutOfRange"      // a number outside its type's range
	CodeDuplicateField  Code = "DuplicateField"  // a field or key set twice, or two members of a oneof
	CodeEmptyValue      Code = "EmptyValue"      // a null list item or map value
	CodeUnsupportedYAML Code = "UnsupportedYAML" // YAML aliases and merge keys
)

// Decode checks n against m's message descriptor and, when there is no
// mistake, fills m (a message with a mistake is left empty). path is the
// path of n ("spec"). It returns every mistake found, in document order.
// Values are set through protoreflect as they are checked: no JSON in
// between.
func Decode(n *yaml.Node, m proto.Message, path string) []Error {
	d := &decoder{}
	pm := m.ProtoReflect()
	if isWellKnown(pm.Descriptor()) {
		d.wellKnownInto(n, pm, path)
	} else {
		d.message(n, pm, path)
	}
	if len(d.errs) > 0 {
		proto.Reset(m)
	}
	return d.errs
}

// Fields returns the keys of mapping n with their values, with the
// mistakes of duplicate, non-string and merge keys; path is n's.
func Fields(n *yaml.Node, path string) (map[string]*yaml.Node, []Error) {
	d := &decoder{}
	return d.fields(n, path), d.errs
}

// String reads a string scalar at path: a missing or null node is "". A
// node that is not a string is a mistake.
func String(n *yaml.Node, path string) (string, []Error) {
	d := &decoder{}
	s, _ := d.str(n, path)
	return s, d.errs
}

// decoder collects the mistakes of one Decode.
type decoder struct {
	errs []Error
}

func (d *decoder) errorf(code Code, field, format string, args ...any) {
	d.errs = append(d.errs, Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
}

// fieldName reports whether k can name a field of the mapping at path: a
// plain string, not a merge key.
func (d *decoder) fieldName(k *yaml.Node, path string) bool {
	switch {
	case k.Kind != yaml.ScalarNode:
		d.errorf(CodeWrongType, path, "a field name must be a plain string, found %s", Describe(k))
		return false
	case k.Value == "<<" && k.Tag == "!!merge":
		d.errorf(CodeUnsupportedYAML, FieldPath(path, k.Value), "YAML merge keys are not supported; write the fields out in full")
		return false
	}
	return true
}

// fields returns the keys of mapping n with their values, reporting
// duplicate and non-string keys.
func (d *decoder) fields(n *yaml.Node, path string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.fieldName(k, path) {
			continue
		}
		if l, dup := lines[k.Value]; dup {
			d.errorf(CodeDuplicateField, FieldPath(path, k.Value), "set twice (lines %d and %d); keep one", l, k.Line)
			continue
		}
		lines[k.Value] = k.Line
		out[k.Value] = v
	}
	return out
}

// str reads a string scalar. A missing or null node gives "", true.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n == nil || IsNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(CodeWrongType, path, "expected a string, found %s%s", Describe(n), quoteHint(n))
		return "", false
	}
	return n.Value, true
}

// message checks mapping n against m's descriptor and sets the fields it
// gives. Problems name the field's path and say how to fix it.
func (d *decoder) message(n *yaml.Node, m protoreflect.Message, path string) {
	if n.Kind == yaml.AliasNode {
		d.errorf(CodeUnsupportedYAML, path, "YAML aliases are not supported; write the value out in full")
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(CodeWrongType, path, "expected a mapping, found %s", Describe(n))
		return
	}
	md := m.Descriptor()
	var seen map[protoreflect.FieldNumber]string
	var oneofs map[protoreflect.Name]string // oneof -> the member set
	fields := md.Fields()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.fieldName(k, path) {
			continue
		}
		fd := fields.ByJSONName(k.Value)
		if fd == nil {
			fd = fields.ByTextName(k.Value)
		}
		if fd == nil {
			d.errorf(CodeUnknownField, FieldPath(path, k.Value), "unknown field %q; %s", k.Value, Suggest(k.Value, jsonNames(md)))
			continue
		}
		fpath := FieldPath(path, fd.JSONName())
		if prev, dup := seen[fd.Number()]; dup {
			d.errorf(CodeDuplicateField, fpath, "set twice (as %q and %q); keep one", prev, k.Value)
			continue
		}
		if seen == nil {
			seen = map[protoreflect.FieldNumber]string{}
		}
		seen[fd.Number()] = k.Value
		if IsNull(v) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, dup := oneofs[od.Name()]; dup {
				d.errorf(CodeDuplicateField, fpath, "cannot be set together with %q: set only one of %s", prev, strings.Join(oneofNames(od), ", "))
				continue
			}
			if oneofs == nil {
				oneofs = map[protoreflect.Name]string{}
			}
			oneofs[od.Name()] = fd.JSONName()
		}
		if v.Kind == yaml.AliasNode {
			d.errorf(CodeUnsupportedYAML, fpath, "YAML aliases are not supported; write the value out in full")
			continue
		}
		switch {
		case fd.IsMap():
			d.mapValue(v, m, fd, fpath)
		case fd.IsList():
			d.listValue(v, m, fd, fpath)
		default:
			if val, ok := d.value(v, fd, func() protoreflect.Message { return m.NewField(fd).Message() }, fpath); ok {
				m.Set(fd, val)
			}
		}
	}
}

// listValue appends the items of sequence n to m's list field fd.
func (d *decoder) listValue(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(CodeWrongType, path, "expected a list, found %s%s", Describe(n), listHint(n))
		return
	}
	list := m.Mutable(fd).List()
	newElement := func() protoreflect.Message { return list.NewElement().Message() }
	for i, item := range n.Content {
		ipath := path + "[" + strconv.Itoa(i) + "]"
		if IsNull(item) {
			d.errorf(CodeEmptyValue, ipath, "empty list item; remove it")
			continue
		}
		if v, ok := d.value(item, fd, newElement, ipath); ok {
			list.Append(v)
		}
	}
}

// mapValue sets the entries of mapping n in m's map field fd.
func (d *decoder) mapValue(n *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(CodeWrongType, path, "expected a mapping, found %s", Describe(n))
		return
	}
	mp := m.Mutable(fd).Map()
	newValue := func() protoreflect.Message { return mp.NewValue().Message() }
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || IsNull(k) {
			d.errorf(CodeWrongType, path, "a key must be a plain string, found %s", Describe(k))
			continue
		}
		kpath := fmt.Sprintf("%s[%s]", path, k.Value)
		key, ok := d.mapKey(k, fd.MapKey().Kind(), path, kpath)
		if !ok {
			continue
		}
		if l, dup := lines[k.Value]; dup {
			d.errorf(CodeDuplicateField, kpath, "set twice (lines %d and %d); keep one", l, k.Line)
			continue
		}
		lines[k.Value] = k.Line
		if IsNull(v) {
			d.errorf(CodeEmptyValue, kpath, "no value; give one or remove the key")
			continue
		}
		if val, ok := d.value(v, fd.MapValue(), newValue, kpath); ok {
			mp.Set(key, val)
		}
	}
}

// mapKey converts the key k of a map whose keys are of kind kind.
func (d *decoder) mapKey(k *yaml.Node, kind protoreflect.Kind, path, kpath string) (protoreflect.MapKey, bool) {
	switch kind {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(k.Value).MapKey(), true
	case protoreflect.BoolKind:
		if k.Value != "true" && k.Value != "false" {
			d.errorf(CodeWrongType, kpath, "%q is not true or false; the keys of %s are booleans", k.Value, path)
			return protoreflect.MapKey{}, false
		}
		return protoreflect.ValueOfBool(k.Value == "true").MapKey(), true
	}
	i, err := strconv.ParseInt(k.Value, 10, 64)
	if err != nil {
		d.errorf(CodeWrongType, kpath, "%q is not a number; the keys of %s are numbers", k.Value, path)
		return protoreflect.MapKey{}, false
	}
	v, ok := d.intOf(i, kind, kpath)
	return v.MapKey(), ok
}

// value converts one singular value of fd's kind; newMsg makes the message
// a message-typed value is decoded into.
func (d *decoder) value(n *yaml.Node, fd protoreflect.FieldDescriptor, newMsg func() protoreflect.Message, path string) (protoreflect.Value, bool) {
	if n.Kind == yaml.AliasNode {
		d.errorf(CodeUnsupportedYAML, path, "YAML aliases are not supported; write the value out in full")
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		m := newMsg()
		before := len(d.errs)
		if isWellKnown(fd.Message()) {
			d.wellKnownInto(n, m, path)
		} else {
			d.message(n, m, path)
		}
		return protoreflect.ValueOfMessage(m), len(d.errs) == before
	case protoreflect.EnumKind:
		return d.enumValue(n, fd.Enum(), path)
	case protoreflect.StringKind:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.errorf(CodeWrongType, path, "expected a string, found %s%s", Describe(n), quoteHint(n))
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfString(n.Value), true
	case protoreflect.BytesKind:
		// As in JSON: base64, standard or URL alphabet, padded or not.
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.errorf(CodeWrongType, path, "expected a base64 string, found %s%s", Describe(n), quoteHint(n))
			return protoreflect.Value{}, false
		}
		b, err := decodeBase64(n.Value)
		if err != nil {
			d.errorf(CodeWrongType, path, "expected a base64 string, found %s", Describe(n))
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfBytes(b), true
	case protoreflect.BoolKind:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(CodeWrongType, path, "expected true or false, found %s", Describe(n))
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfBool(n.Value == "true"), true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			d.errorf(CodeWrongType, path, "expected a number, found %s%s", Describe(n), unquoteHint(n))
			return protoreflect.Value{}, false
		}
		if fd.Kind() == protoreflect.DoubleKind {
			return protoreflect.ValueOfFloat64(f), true
		}
		if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
			d.errorf(CodeOutOfRange, path, "%s is out of range for a 32-bit float", n.Value)
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfFloat32(float32(f)), true
	default:
		return d.intValue(n, fd.Kind(), path)
	}
}

func (d *decoder) intValue(n *yaml.Node, kind protoreflect.Kind, path string) (protoreflect.Value, bool) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(CodeWrongType, path, "expected a whole number, found %s%s", Describe(n), unquoteHint(n))
		return protoreflect.Value{}, false
	}
	if err := n.Decode(&i); err != nil {
		d.errorf(CodeOutOfRange, path, "%s is too large", n.Value)
		return protoreflect.Value{}, false
	}
	return d.intOf(i, kind, path)
}

// intOf checks that i fits an integer field of kind and converts it.
func (d *decoder) intOf(i int64, kind protoreflect.Kind, path string) (protoreflect.Value, bool) {
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
		d.errorf(CodeOutOfRange, path, "%d is negative; use a number from 0 to %d", i, hi)
		return protoreflect.Value{}, false
	case i < lo || i > hi:
		d.errorf(CodeOutOfRange, path, "%d is out of range; use a number from %d to %d", i, lo, hi)
		return protoreflect.Value{}, false
	}
	switch kind {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(i)), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(i)), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(i)), true
	default:
		return protoreflect.ValueOfInt64(i), true
	}
}

func (d *decoder) enumValue(n *yaml.Node, ed protoreflect.EnumDescriptor, path string) (protoreflect.Value, bool) {
	values := ed.Values()
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if v := values.ByName(protoreflect.Name(n.Value)); v != nil {
			return protoreflect.ValueOfEnum(v.Number()), true
		}
	}
	var names []string
	for i := 0; i < values.Len(); i++ {
		names = append(names, string(values.Get(i).Name()))
	}
	valid := "use one of " + strings.Join(names, ", ")
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(CodeInvalidEnum, path, "expected one of %s, found %s", strings.Join(names, ", "), Describe(n))
		return protoreflect.Value{}, false
	}
	for _, name := range names {
		if strings.EqualFold(name, n.Value) {
			d.errorf(CodeInvalidEnum, path, "invalid value %q; values are upper case: write %s", n.Value, name)
			return protoreflect.Value{}, false
		}
	}
	s := Closest(n.Value, names)
	if s == "" {
		s = containing(n.Value, names)
	}
	if s != "" {
		d.errorf(CodeInvalidEnum, path, "invalid value %q; did you mean %s? (%s)", n.Value, s, valid)
		return protoreflect.Value{}, false
	}
	d.errorf(CodeInvalidEnum, path, "invalid value %q; %s", n.Value, valid)
	return protoreflect.Value{}, false
}

// isWellKnown reports whether md is one of protobuf's well-known types,
// which have JSON forms of their own.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

// wellKnownInto decodes a value of a well-known type into m. A wrapper
// (google.protobuf.BoolValue, UInt32Value, ...) is written as its bare
// value in JSON and YAML, so it is checked as one; other well-known types
// (Duration, Struct, ...) have their own JSON forms, which protojson reads
// here (they are rare in hand-written resources), so that a mistake names
// its own field.
func (d *decoder) wellKnownInto(n *yaml.Node, m protoreflect.Message, path string) {
	md := m.Descriptor()
	if strings.HasSuffix(string(md.Name()), "Value") && md.Fields().Len() == 1 {
		if inner := md.Fields().ByName("value"); inner != nil && !inner.IsList() && !inner.IsMap() && inner.Kind() != protoreflect.MessageKind {
			if v, ok := d.value(n, inner, nil, path); ok {
				m.Set(inner, v)
			}
			return
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		d.errorf(CodeWrongType, path, "%v", err)
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = protojson.Unmarshal(b, m.Interface())
	}
	if err != nil {
		if md.FullName() == "google.protobuf.Duration" {
			d.errorf(CodeWrongType, path, "expected a duration in seconds with an \"s\" suffix, e.g. \"1.5s\" or \"30s\", found %s", Describe(n))
		} else {
			d.errorf(CodeWrongType, path, "invalid %s: %v", md.Name(), err)
		}
	}
}

// decodeBase64 reads base64 as protojson does: the standard or the URL
// alphabet, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
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

// jsonNames lists md's fields by their JSON names, in declaration order.
func jsonNames(md protoreflect.MessageDescriptor) []string {
	fields := md.Fields()
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, fields.Get(i).JSONName())
	}
	return out
}

// Suggest says which field was probably meant, or lists the valid ones.
func Suggest(name string, valid []string) string {
	if s := Closest(name, valid); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "valid fields here: " + strings.Join(valid, ", ")
}

// Closest returns the candidate nearest to s by edit distance (ignoring
// case, "_" and "-"), if it is near enough to be a likely typo.
func Closest(s string, candidates []string) string {
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

// Describe names what a node holds, for "found ..." messages.
func Describe(n *yaml.Node) string {
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

// IsNull reports whether n is a null scalar.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// FieldPath joins a field to a path: "spec" and "hosts" are "spec.hosts".
func FieldPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
