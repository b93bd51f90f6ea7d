package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
)

// fields is an object in its JSON form. Printers and apply's merge read
// and write objects by their Kubernetes field paths rather than by Go
// fields, the way kubectl's columns and strategic merges are defined; that
// keeps them independent of how api spells optional values (pointers or
// not) and works the same for every kind.
type fields map[string]any

// toFields converts an object to its JSON form.
func toFields(o any) (fields, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	return fieldsFromJSON(b)
}

func fieldsFromJSON(b []byte) (fields, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var f fields
	if err := d.Decode(&f); err != nil {
		return nil, err
	}
	return f, nil
}

// mustFields is toFields for objects that came out of the api package (and
// so always marshal).
func mustFields(o any) fields {
	f, err := toFields(o)
	if err != nil {
		return fields{}
	}
	return f
}

// get returns the value at path, or nil.
func (f fields) get(path ...string) any {
	var cur any = map[string]any(f)
	for _, p := range path {
		m, ok := asMap(cur)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case fields:
		return m, true
	}
	return nil, false
}

// obj returns the object at path (nil when absent or not an object).
func (f fields) obj(path ...string) fields {
	m, _ := asMap(f.get(path...))
	return m
}

// str returns the string at path ("" when absent). Numbers and booleans are
// formatted.
func (f fields) str(path ...string) string {
	switch v := f.get(path...).(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// num returns the integer at path and whether it is set.
func (f fields) num(path ...string) (int64, bool) {
	switch v := f.get(path...).(type) {
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			fl, ferr := v.Float64()
			return int64(fl), ferr == nil
		}
		return n, true
	case float64:
		return int64(v), true
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	}
	return 0, false
}

// numOr returns the integer at path, or def when unset.
func (f fields) numOr(def int64, path ...string) int64 {
	if n, ok := f.num(path...); ok {
		return n
	}
	return def
}

// bool returns the boolean at path (false when absent).
func (f fields) bool(path ...string) bool {
	b, _ := f.get(path...).(bool)
	return b
}

// list returns the objects of the array at path; non-objects are skipped.
func (f fields) list(path ...string) []fields {
	arr, _ := f.get(path...).([]any)
	out := make([]fields, 0, len(arr))
	for _, e := range arr {
		if m, ok := asMap(e); ok {
			out = append(out, m)
		}
	}
	return out
}

// strs returns the strings of the array at path.
func (f fields) strs(path ...string) []string {
	arr, _ := f.get(path...).([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// strMap returns the string map at path.
func (f fields) strMap(path ...string) map[string]string {
	m := f.obj(path...)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fields{"v": v}.str("v")
	}
	return out
}

// time returns the RFC 3339 timestamp at path (zero when absent).
func (f fields) time(path ...string) time.Time {
	t, err := time.Parse(time.RFC3339, f.str(path...))
	if err != nil {
		return time.Time{}
	}
	return t
}

// has reports whether path is set.
func (f fields) has(path ...string) bool { return f.get(path...) != nil }

// set sets the value at path, creating intermediate objects.
func (f fields) set(v any, path ...string) {
	cur := map[string]any(f)
	for _, p := range path[:len(path)-1] {
		next, ok := asMap(cur[p])
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[path[len(path)-1]] = v
}

// del removes the value at path.
func (f fields) del(path ...string) {
	parent, ok := asMap(f.get(path[:len(path)-1]...))
	if len(path) == 1 {
		parent, ok = f, true
	}
	if ok {
		delete(parent, path[len(path)-1])
	}
}

// labelString formats a label map as kubectl does: k=v pairs sorted by key,
// comma separated.
func labelString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// orNone is kubectl's placeholder for an empty cell.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// toObject converts a JSON form back to a typed object of the kind info
// describes.
func toObject(info api.ResourceInfo, f fields) (api.Object, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	o := info.New()
	if err := json.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("%s: %w", info.Kind, err)
	}
	return o, nil
}
