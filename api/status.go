package api

import (
	"fmt"
	"strings"
)

// StatusReason is a machine-readable reason for a failed request.
type StatusReason string

// Reasons, as in Kubernetes.
const (
	ReasonNotFound              StatusReason = "NotFound"
	ReasonAlreadyExists         StatusReason = "AlreadyExists"
	ReasonConflict              StatusReason = "Conflict"
	ReasonInvalid               StatusReason = "Invalid"
	ReasonBadRequest            StatusReason = "BadRequest"
	ReasonGone                  StatusReason = "Gone"
	ReasonRequestEntityTooLarge StatusReason = "RequestEntityTooLarge"
	ReasonMethodNotAllowed      StatusReason = "MethodNotAllowed"
	ReasonUnsupportedMediaType  StatusReason = "UnsupportedMediaType"
	ReasonServiceUnavailable    StatusReason = "ServiceUnavailable"
	ReasonTimeout               StatusReason = "Timeout"
	ReasonInternalError         StatusReason = "InternalError"
	ReasonUnauthorized          StatusReason = "Unauthorized"
	ReasonForbidden             StatusReason = "Forbidden"
	ReasonTooManyRequests       StatusReason = "TooManyRequests"
)

// Status is the body of every error response (kind "Status").
type Status struct {
	TypeMeta `json:",inline"`
	Status   string         `json:"status"` // "Failure" or "Success"
	Message  string         `json:"message,omitempty"`
	Reason   StatusReason   `json:"reason,omitempty"`
	Details  *StatusDetails `json:"details,omitempty"`
	Code     int            `json:"code"`
}

// StatusDetails names the object concerned and, for Invalid, every field
// error.
type StatusDetails struct {
	Name   string        `json:"name,omitempty"`
	Group  string        `json:"group,omitempty"`
	Kind   string        `json:"kind,omitempty"`
	Causes []StatusCause `json:"causes,omitempty"`
	// RetryAfterSeconds is set on 429 and 503.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// StatusCause is one field error.
type StatusCause struct {
	Type    string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Field   string `json:"field,omitempty"`
}

// Error makes a Status usable as a Go error (the client returns it). The
// message already names every cause; without one, the causes are listed.
func (s *Status) Error() string {
	if s.Message != "" || s.Details == nil || len(s.Details.Causes) == 0 {
		return s.Message
	}
	parts := make([]string, len(s.Details.Causes))
	for i, c := range s.Details.Causes {
		parts[i] = c.Field + ": " + c.Message
	}
	return strings.Join(parts, "; ")
}

// FieldError is one problem with one field of a manifest. Field is the
// path ("spec.template.spec.containers[0].image").
type FieldError struct {
	Field  string
	Type   FieldErrorType
	Detail string
}

// FieldErrorType classifies a FieldError (Kubernetes' cause reasons).
type FieldErrorType string

// Field error types.
const (
	FieldRequired     FieldErrorType = "FieldValueRequired"
	FieldInvalid      FieldErrorType = "FieldValueInvalid"
	FieldNotSupported FieldErrorType = "FieldValueNotSupported"
	FieldUnknown      FieldErrorType = "FieldValueUnknown"
	FieldDuplicate    FieldErrorType = "FieldValueDuplicate"
	FieldForbidden    FieldErrorType = "FieldValueForbidden"
)

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// FieldErrors is every problem found in one object; validation and strict
// decoding report all of them at once.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return fmt.Sprintf("%d errors: %s", len(parts), strings.Join(parts, "; "))
}

// Causes converts field errors to Status causes.
func (es FieldErrors) Causes() []StatusCause {
	out := make([]StatusCause, len(es))
	for i, e := range es {
		out[i] = StatusCause{Type: string(e.Type), Message: e.Detail, Field: e.Field}
	}
	return out
}
