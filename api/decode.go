package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// DecodeError is a problem with one document of a multi-document stream.
// Errs holds the document's field errors; Err a syntax or structural
// problem that stopped decoding it.
type DecodeError struct {
	Doc  int // 0-based index of the document in the stream
	Line int // line of the stream where the document starts (1-based)
	Kind string
	Name string
	Errs FieldErrors
	Err  error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", e.Doc)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	if e.Kind != "" || e.Name != "" {
		fmt.Fprintf(&b, " %s/%s", e.Kind, e.Name)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(e.Errs.Error())
	}
	return b.String()
}

// Unwrap returns the field errors or the underlying error, so
// errors.As(err, &FieldErrors{}) works.
func (e *DecodeError) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return e.Errs
}

// ErrNoObject is returned by DecodeObject for input without a document.
var ErrNoObject = errors.New("no object in input")

// DecodeObject strictly decodes exactly one object from YAML or JSON. Field
// problems are returned as FieldErrors.
func DecodeObject(data []byte) (Object, error) {
	objs, err := Decode(data)
	if err != nil {
		return nil, err
	}
	switch len(objs) {
	case 0:
		return nil, ErrNoObject
	case 1:
		return objs[0], nil
	}
	return nil, fmt.Errorf("expected one object, got %d", len(objs))
}

// Decode strictly decodes every object of a YAML stream (documents
// separated by "---" lines; empty documents are skipped) or of a JSON
// object (or a sequence of them). A List ({"kind":"List","items":[...]})
// expands to its items.
//
// Every field must be known: a Kubernetes field skiff does not implement is
// a FieldNotSupported error ("spec.template.spec.containers[0].volumeMounts:
// not supported"), any other unknown field a FieldUnknown error; wrong JSON
// types are FieldInvalid. All field errors of a document are reported
// together. When the input holds a single document its errors are returned
// as FieldErrors (or a syntax error); otherwise the first failing
// document's as a *DecodeError.
func Decode(data []byte) ([]Object, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	var objs []Object
	for i, d := range docs {
		out, derr := decodeDocument(d.json, objs)
		if derr != nil {
			if len(docs) == 1 {
				if derr.Err != nil {
					return nil, derr.Err
				}
				return nil, derr.Errs
			}
			derr.Doc, derr.Line = i, d.line
			return nil, derr
		}
		objs = out
	}
	return objs, nil
}

type document struct {
	json []byte
	line int
}

// splitDocuments returns the non-empty documents of data, as JSON.
func splitDocuments(data []byte) ([]document, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return splitJSON(data)
	}
	var docs []document
	var err error
	line, start := 1, 1
	var cur bytes.Buffer
	flush := func() {
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			j, yerr := yaml.YAMLToJSON(cur.Bytes())
			if yerr != nil {
				err = &DecodeError{Doc: len(docs), Line: start, Err: fmt.Errorf("invalid YAML: %w", yerr)}
				return
			}
			if !bytes.Equal(j, []byte("null")) {
				docs = append(docs, document{json: j, line: start})
			}
		}
		cur.Reset()
	}
	r := bufio.NewReader(bytes.NewReader(data))
	for {
		l, rerr := r.ReadBytes('\n')
		if isSeparator(l) {
			flush()
			start = line + 1
		} else {
			cur.Write(l)
		}
		line++
		if rerr == io.EOF {
			break
		}
	}
	flush()
	if err != nil {
		de := err.(*DecodeError)
		if countDocuments(data) == 1 {
			return nil, de.Err
		}
		return nil, de
	}
	return docs, nil
}

// countDocuments counts the non-blank documents of a YAML stream, so
// errors of single-document input are not dressed as "document 0".
func countDocuments(data []byte) int {
	n, blank := 0, true
	for _, l := range bytes.Split(data, []byte("\n")) {
		if isSeparator(l) {
			blank = true
			continue
		}
		if blank && len(bytes.TrimSpace(l)) > 0 && bytes.TrimSpace(l)[0] != '#' {
			n++
			blank = false
		}
	}
	return n
}

// isSeparator reports a "---" line (trailing whitespace allowed), as in
// the Kubernetes YAML reader.
func isSeparator(l []byte) bool {
	return bytes.HasPrefix(l, []byte("---")) && len(bytes.TrimRight(l[3:], " \t\r\n")) == 0
}

func splitJSON(data []byte) ([]document, error) {
	var docs []document
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		off := dec.InputOffset()
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			line, col := lineCol(data, off)
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line, col = lineCol(data, se.Offset)
			}
			err = fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
			if len(docs) == 0 {
				return nil, err
			}
			return nil, &DecodeError{Doc: len(docs), Err: err}
		}
		line, _ := lineCol(data, off)
		docs = append(docs, document{json: raw, line: line})
	}
}

func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// decodeDocument decodes one JSON document, appending its object(s) to objs.
func decodeDocument(data []byte, objs []Object) ([]Object, *DecodeError) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("invalid JSON: %w", err)}
	}
	if dec.More() {
		return nil, &DecodeError{Err: errors.New("invalid JSON: trailing data after object")}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &DecodeError{Err: fmt.Errorf("a manifest must be an object, not %s", jsonTypeName(v))}
	}
	if kind, _ := m["kind"].(string); kind == "List" || (strings.HasSuffix(kind, "List") && m["items"] != nil) {
		return decodeList(m, objs)
	}
	o, errs := decodeMap(m, data)
	if len(errs) > 0 {
		k, _ := m["kind"].(string)
		name, _ := nestedString(m, "metadata", "name")
		return nil, &DecodeError{Kind: k, Name: name, Errs: errs}
	}
	return append(objs, o), nil
}

func decodeList(m map[string]any, objs []Object) ([]Object, *DecodeError) {
	var errs FieldErrors
	for k := range m {
		switch k {
		case "apiVersion", "kind", "items", "metadata":
		default:
			errs = append(errs, FieldError{Field: k, Type: FieldUnknown, Detail: "unknown field"})
		}
	}
	items, ok := m["items"].([]any)
	if !ok && m["items"] != nil {
		errs = append(errs, typeError("items", "array", m["items"]))
	}
	if len(errs) > 0 {
		return nil, &DecodeError{Kind: "List", Errs: errs}
	}
	for i, it := range items {
		im, ok := it.(map[string]any)
		if !ok {
			return nil, &DecodeError{Kind: "List", Errs: FieldErrors{typeError("items["+strconv.Itoa(i)+"]", "object", it)}}
		}
		b, err := json.Marshal(im)
		if err != nil {
			return nil, &DecodeError{Kind: "List", Err: fmt.Errorf("items[%d]: %w", i, err)}
		}
		o, ferrs := decodeMap(im, b)
		if len(ferrs) > 0 {
			for j := range ferrs {
				ferrs[j].Field = "items[" + strconv.Itoa(i) + "]." + ferrs[j].Field
			}
			return nil, &DecodeError{Kind: "List", Errs: ferrs}
		}
		objs = append(objs, o)
	}
	return objs, nil
}

func nestedString(m map[string]any, keys ...string) (string, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur = mm[k]
	}
	s, ok := cur.(string)
	return s, ok
}

// decodeMap checks m (the parsed form of data) against its kind's type and
// then unmarshals data into a new object.
func decodeMap(m map[string]any, data []byte) (Object, FieldErrors) {
	kind, kok := m["kind"].(string)
	apiVersion, aok := m["apiVersion"].(string)
	var errs FieldErrors
	if !aok || apiVersion == "" {
		errs = append(errs, FieldError{Field: "apiVersion", Type: FieldRequired, Detail: "Required value"})
	}
	if !kok || kind == "" {
		errs = append(errs, FieldError{Field: "kind", Type: FieldRequired, Detail: "Required value"})
		return nil, errs
	}
	info, ok := ByKind(Kind(kind))
	if !ok {
		return nil, append(errs, FieldError{Field: "kind", Type: FieldNotSupported,
			Detail: fmt.Sprintf("Unsupported value: %q: no kind %q is registered", kind, kind)})
	}
	if aok && apiVersion != "" && apiVersion != info.APIVersion() {
		errs = append(errs, FieldError{Field: "apiVersion", Type: FieldInvalid,
			Detail: fmt.Sprintf("Invalid value: %q: kind %s is served as apiVersion %q", apiVersion, kind, info.APIVersion())})
	}
	o := info.New()
	w := walker{errs: errs}
	w.walk(m, reflect.TypeOf(o).Elem())
	errs = w.errs
	if len(errs) > 0 {
		sortFieldErrors(errs)
		return nil, errs
	}
	if err := json.Unmarshal(data, o); err != nil {
		// The walk should have caught everything json rejects.
		return nil, FieldErrors{{Type: FieldInvalid, Detail: "Invalid value: " + err.Error()}}
	}
	return o, nil
}

// sortFieldErrors orders errors by field and detail, so reports do not
// depend on map iteration order.
func sortFieldErrors(errs FieldErrors) {
	if len(errs) > 1 {
		sort.SliceStable(errs, func(i, j int) bool {
			if errs[i].Field != errs[j].Field {
				return errs[i].Field < errs[j].Field
			}
			return errs[i].Detail < errs[j].Detail
		})
	}
}

// unsupportedFields are Kubernetes fields skiff rejects as not supported
// (rather than unknown), per Go type.
var unsupportedFields = map[reflect.Type][]string{
	reflect.TypeFor[ObjectMeta](): {"managedFields", "selfLink"},
	reflect.TypeFor[PodSpec](): {"volumes", "initContainers", "ephemeralContainers",
		"serviceAccountName", "serviceAccount", "automountServiceAccountToken", "imagePullSecrets",
		"dnsPolicy", "dnsConfig", "priorityClassName", "priority", "schedulerName",
		"hostUsers", "hostname", "subdomain", "hostAliases", "runtimeClassName", "preemptionPolicy",
		"overhead", "readinessGates", "enableServiceLinks", "shareProcessNamespace",
		"activeDeadlineSeconds", "os", "setHostnameAsFQDN", "schedulingGates", "resourceClaims", "resources"},
	reflect.TypeFor[Container](): {"volumeMounts", "volumeDevices", "envFrom",
		"lifecycle", "stdin", "stdinOnce", "tty", "terminationMessagePath", "terminationMessagePolicy",
		"resizePolicy", "restartPolicy"},
	reflect.TypeFor[PodSecurityContext](): {"seLinuxOptions", "windowsOptions", "sysctls", "fsGroupChangePolicy",
		"seccompProfile", "appArmorProfile", "supplementalGroupsPolicy", "seLinuxChangePolicy"},
	reflect.TypeFor[SecurityContext](): {"seLinuxOptions", "windowsOptions", "procMount", "seccompProfile",
		"appArmorProfile"},
	reflect.TypeFor[EnvVar]():                   {"valueFrom"},
	reflect.TypeFor[ContainerPort]():            {"hostIP"},
	reflect.TypeFor[ResourceRequirements]():     {"claims"},
	reflect.TypeFor[Probe]():                    {"grpc", "terminationGracePeriodSeconds"},
	reflect.TypeFor[PodAffinityTerm]():          {"matchLabelKeys", "mismatchLabelKeys"},
	reflect.TypeFor[TopologySpreadConstraint](): {"minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy", "matchLabelKeys"},
	reflect.TypeFor[ServiceSpec](): {"externalIPs", "externalName", "loadBalancerSourceRanges",
		"healthCheckNodePort", "ipFamilies", "ipFamilyPolicy", "allocateLoadBalancerNodePorts",
		"loadBalancerClass", "trafficDistribution"},
	reflect.TypeFor[ServicePort]():         {"appProtocol"},
	reflect.TypeFor[EndpointPort]():        {"appProtocol"},
	reflect.TypeFor[NodeSpec]():            {"configSource", "externalID"},
	reflect.TypeFor[NodeStatus]():          {"phase", "images", "volumesInUse", "volumesAttached", "config", "runtimeHandlers", "features"},
	reflect.TypeFor[PodStatus]():           {"initContainerStatuses", "ephemeralContainerStatuses", "nominatedNodeName", "qosClass", "resize", "resourceClaimStatuses", "hostIPs"},
	reflect.TypeFor[ContainerStatus]():     {"allocatedResources", "resources", "volumeMounts", "user", "allocatedResourcesStatus", "stopSignal"},
	reflect.TypeFor[NamespaceStatus]():     {"conditions"},
	reflect.TypeFor[DeploymentStatus]():    {"terminatingReplicas"},
	reflect.TypeFor[ServiceStatus]():       {"conditions"},
	reflect.TypeFor[Event]():               {"eventTime", "series", "action", "related"},
	reflect.TypeFor[LoadBalancerIngress](): {"ports", "ipMode"},
}

// fieldInfo is one JSON field of a struct type.
type fieldInfo struct {
	index []int
	typ   reflect.Type
}

// structInfo is the JSON shape of a struct type, cached per type.
type structInfo struct {
	fields      map[string]fieldInfo
	unsupported map[string]bool
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string]fieldInfo{}}
	collectFields(t, nil, si)
	for _, f := range unsupportedFields[t] {
		if si.unsupported == nil {
			si.unsupported = map[string]bool{}
		}
		si.unsupported[f] = true
	}
	actual, _ := structInfos.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func collectFields(t reflect.Type, index []int, si *structInfo) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, si)
			// Inline structs (TypeMeta, ProbeHandler) contribute their
			// unsupported names too.
			for _, u := range unsupportedFields[f.Type] {
				if si.unsupported == nil {
					si.unsupported = map[string]bool{}
				}
				si.unsupported[u] = true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		si.fields[name] = fieldInfo{index: idx, typ: f.Type}
	}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// pathElem is one step of a field path: a field name, or an index (when
// name is empty and key is unset), or a map key.
type pathElem struct {
	name  string
	index int
	key   string
	isKey bool
}

// walker checks a parsed JSON value against a Go type, collecting field
// errors with their paths.
type walker struct {
	path []pathElem
	errs FieldErrors
}

func (w *walker) pathString() string {
	var b strings.Builder
	for _, p := range w.path {
		switch {
		case p.isKey:
			b.WriteString("[" + p.key + "]")
		case p.name == "":
			b.WriteString("[" + strconv.Itoa(p.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.name)
		}
	}
	return b.String()
}

func (w *walker) fail(t FieldErrorType, detail string) {
	w.errs = append(w.errs, FieldError{Field: w.pathString(), Type: t, Detail: detail})
}

func (w *walker) typeMismatch(want string, v any) {
	w.errs = append(w.errs, typeError(w.pathString(), want, v))
}

func typeError(field, want string, v any) FieldError {
	return FieldError{Field: field, Type: FieldInvalid,
		Detail: fmt.Sprintf("Invalid value: %s: expected %s, got %s", shortJSON(v), want, jsonTypeName(v))}
}

func shortJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 40 {
		return string(b[:37]) + "..."
	}
	return string(b)
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (w *walker) walk(v any, t reflect.Type) {
	if v == nil {
		return // null is the zero value, as in encoding/json
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType) {
		w.leaf(v, t)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(v, t.Elem())
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeMismatch("object", v)
			return
		}
		si := structInfoOf(t)
		for k, fv := range m {
			fi, ok := si.fields[k]
			w.path = append(w.path, pathElem{name: k})
			switch {
			case ok:
				w.walk(fv, fi.typ)
			case si.unsupported[k]:
				w.fail(FieldNotSupported, "not supported")
			default:
				w.fail(FieldUnknown, "unknown field")
			}
			w.path = w.path[:len(w.path)-1]
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			w.typeMismatch("array", v)
			return
		}
		for i, ev := range a {
			w.path = append(w.path, pathElem{index: i})
			w.walk(ev, t.Elem())
			w.path = w.path[:len(w.path)-1]
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeMismatch("object", v)
			return
		}
		for k, ev := range m {
			w.path = append(w.path, pathElem{key: k, isKey: true})
			w.walk(ev, t.Elem())
			w.path = w.path[:len(w.path)-1]
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.typeMismatch("string", v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.typeMismatch("boolean", v)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeMismatch("integer", v)
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			w.fail(FieldInvalid, fmt.Sprintf("Invalid value: %s: expected a %d-bit integer", n, t.Bits()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeMismatch("integer", v)
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			w.fail(FieldInvalid, fmt.Sprintf("Invalid value: %s: expected a non-negative %d-bit integer", n, t.Bits()))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeMismatch("number", v)
			return
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			w.fail(FieldInvalid, fmt.Sprintf("Invalid value: %s: out of range", n))
		}
	case reflect.Interface:
	default:
		w.fail(FieldInvalid, "cannot decode into "+t.String())
	}
}

// leaf checks a value of a type with its own UnmarshalJSON (Quantity,
// IntOrString, Time) by running it.
func (w *walker) leaf(v any, t reflect.Type) {
	var b []byte
	switch v := v.(type) {
	case string:
		b = strconv.AppendQuote(nil, v)
	case json.Number:
		b = []byte(v)
	case map[string]any, []any, bool:
		w.typeMismatch(leafWant(t), v)
		return
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			w.fail(FieldInvalid, "Invalid value: "+err.Error())
			return
		}
	}
	u := reflect.New(t).Interface().(json.Unmarshaler)
	if err := u.UnmarshalJSON(b); err != nil {
		w.fail(FieldInvalid, fmt.Sprintf("Invalid value: %s: %v", b, err))
	}
}

func leafWant(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Quantity]():
		return "a quantity string or number"
	case reflect.TypeFor[IntOrString]():
		return "an integer or string"
	case reflect.TypeFor[Time]():
		return "an RFC 3339 time string"
	}
	return "a scalar"
}
