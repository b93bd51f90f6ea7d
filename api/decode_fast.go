package api

import (
	"unicode/utf8"

	jsoniter "github.com/json-iterator/go"
)

// strictJSON decodes with the rules the strict walker enforces: field names
// match exactly (case-sensitive) and an unknown field is an error.
var strictJSON = jsoniter.Config{
	CaseSensitive:          true,
	DisallowUnknownFields:  true,
	ValidateJsonRawMessage: true,
}.Froze()

// DecodeAs strictly decodes one JSON object of a known kind (an API
// request body, whose kind the URL names). A missing kind or apiVersion is
// filled in from info; one that differs is an error.
//
// Well-formed input takes a fast path: a single case-sensitive pass that
// refuses unknown fields. Anything it refuses is decoded again by
// DecodeObject, which names every bad field, so errors are the same as
// Decode's.
func DecodeAs(data []byte, info ResourceInfo) (Object, error) {
	if !utf8.Valid(data) {
		// encoding/json turns invalid UTF-8 into U+FFFD; json-iterator
		// keeps the bytes. Let the strict path decide.
		return DecodeObject(data)
	}
	o := info.New()
	tm := o.GetTypeMeta()
	tm.Kind, tm.APIVersion = "", ""
	if err := strictJSON.Unmarshal(data, o); err == nil {
		if tm.Kind == "" {
			tm.Kind = string(info.Kind)
		}
		if tm.APIVersion == "" {
			tm.APIVersion = info.APIVersion()
		}
		if tm.Kind == string(info.Kind) && tm.APIVersion == info.APIVersion() {
			return o, nil
		}
	}
	return DecodeObject(data)
}
