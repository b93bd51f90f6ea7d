package scheduler

import (
	"errors"
	"strings"
)

// Code classifies the outcome of a plugin call.
type Code int

// Status codes.
const (
	// Success: the node passes (a nil *Status is Success too).
	Success Code = iota
	// Unschedulable: the node does not fit now but might after a cluster
	// change (another pod leaves, a node is uncordoned).
	Unschedulable
	// UnschedulableAndUnresolvable: the node cannot fit the pod whatever
	// happens to other pods (wrong labels, missing topology key); preemption
	// would not help.
	UnschedulableAndUnresolvable
	// Error: the plugin failed; the pod is retried with back-off.
	Error
	// Skip: returned by a PreFilter or PreScore to say the plugin has
	// nothing to do for this pod, so its Filter or Score is not called.
	Skip
)

func (c Code) String() string {
	switch c {
	case Success:
		return "Success"
	case Unschedulable:
		return "Unschedulable"
	case UnschedulableAndUnresolvable:
		return "UnschedulableAndUnresolvable"
	case Error:
		return "Error"
	case Skip:
		return "Skip"
	}
	return "Unknown"
}

// Status is the result of a plugin call: a code and the human reasons
// that end up in the pod's PodScheduled condition. Statuses are
// immutable once returned, so plugins share preallocated ones.
type Status struct {
	code    Code
	reasons []string
	err     error
}

// NewStatus returns a status with the given code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps err in an Error status (nil err gives nil, Success).
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code returns the status code; nil is Success.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// IsSuccess reports whether s is nil or Success.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// Reasons returns the reasons; callers must not modify the slice.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Err returns the wrapped error of an Error status, or an error made of
// the reasons for other failures, or nil on success.
func (s *Status) Err() error {
	if s.IsSuccess() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}

// Message joins the reasons.
func (s *Status) Message() string {
	return strings.Join(s.Reasons(), ", ")
}
