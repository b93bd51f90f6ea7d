package api

import "time"

// TypeMeta names an object's kind and API version, as in every manifest.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// ObjectMeta is the metadata every object carries. uid, resourceVersion,
// generation and creationTimestamp are set by the store, never by clients.
type ObjectMeta struct {
	Name              string `json:"name,omitempty"`
	GenerateName      string `json:"generateName,omitempty"`
	Namespace         string `json:"namespace,omitempty"`
	UID               UID    `json:"uid,omitempty"`
	ResourceVersion   string `json:"resourceVersion,omitempty"`
	Generation        int64  `json:"generation,omitempty"`
	CreationTimestamp *Time  `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *Time  `json:"deletionTimestamp,omitempty"`
	// DeletionGracePeriodSeconds is the grace a pod being deleted was
	// given: its node stops it within that many seconds of the request
	// and then removes it (set by the store with DeletionTimestamp).
	DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds,omitempty"`
	Labels                     map[string]string `json:"labels,omitempty"`
	Annotations                map[string]string `json:"annotations,omitempty"`
	OwnerReferences            []OwnerReference  `json:"ownerReferences,omitempty"`
	Finalizers                 []string          `json:"finalizers,omitempty"`
}

// UID identifies one incarnation of an object: a deleted and recreated
// object of the same name gets a new one.
type UID string

// OwnerReference points at the object that owns this one; the garbage
// collector deletes dependents when their owner is gone.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                UID    `json:"uid"`
	Controller         *bool  `json:"controller,omitempty"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// Time is a timestamp serialised as RFC 3339 with second precision, as in
// Kubernetes.
type Time struct{ time.Time }

// NewTime wraps t, truncated to seconds as it will be serialised.
func NewTime(t time.Time) *Time { return &Time{t.UTC().Truncate(time.Second)} }

// MarshalJSON writes RFC 3339.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339) + `"`), nil
}

// UnmarshalJSON reads RFC 3339 (or null).
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return &timeError{string(b)}
	}
	v, err := time.Parse(time.RFC3339, string(b[1:len(b)-1]))
	if err != nil {
		return &timeError{string(b)}
	}
	t.Time = v
	return nil
}

type timeError struct{ v string }

func (e *timeError) Error() string { return "invalid time " + e.v + ": want RFC 3339" }

// Object is implemented by every top-level kind. Objects handed out by the
// store are shared and must be treated as read-only: copy (DeepCopy) before
// changing one.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
}

// GetTypeMeta implements Object for every kind that embeds TypeMeta.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// GetObjectMeta implements Object for every kind that embeds ObjectMeta as
// the field Metadata.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// ListMeta is the metadata of a list: the resourceVersion it was read at.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}
