// Package api holds skiff's object types (Kubernetes-shaped: apiVersion, kind,
// metadata, spec, status), their registry of kinds and resource names, strict
// manifest decoding, defaulting, validation and label selectors.
//
// The write path of the API server is Decode (or DecodeObject), then
// Default, then Validate (ValidateUpdate, after PrepareForUpdate, for
// replacements). Each reports every problem of an object at once as
// FieldErrors carrying the field path, which Status.Details.Causes carries
// to clients.
//
// Source organization:
//
//	meta.go, registry.go        TypeMeta/ObjectMeta, the kinds and their resource names
//	pod.go ... event.go         one file per kind; common.go for shared types
//	quantity.go, intorstring.go Kubernetes quantity and int-or-string scalars
//	selector.go, labelselector.go, fieldselector.go
//	                            label (-l) and field (--field-selector) selectors
//	decode.go                   strict YAML/JSON decoding with field paths
//	defaults.go                 defaulting
//	validate*.go, names.go      validation and name/label syntax
//
// api imports nothing of skiff: every other package may depend on it.
package api
