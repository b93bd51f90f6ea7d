package api

// Selector matches label sets. Parse the kubectl `-l` syntax with
// ParseSelector or convert a LabelSelector with AsSelector.
type Selector interface {
	Matches(labels map[string]string) bool
	Empty() bool
	String() string
}

// FieldSelector matches objects by a few well-known fields
// (metadata.name, metadata.namespace, spec.nodeName, status.phase, ...).
// Parse with ParseFieldSelector.
type FieldSelector interface {
	Matches(o Object) bool
	Empty() bool
	String() string
}
