package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// HeaderWriteOutcome is set to "unknown" on a failed write that may
// nevertheless have been committed, so clients know not to retry it
// blindly.
const HeaderWriteOutcome = "X-Skiff-Write-Outcome"

// statusError is an error that already knows its HTTP answer.
type statusError struct {
	status     api.Status
	retryAfter int // seconds; 0: no Retry-After header
	unknown    bool
}

func (e *statusError) Error() string { return e.status.Error() }

func newStatus(code int, reason api.StatusReason, msg string) *statusError {
	return &statusError{status: api.Status{
		TypeMeta: api.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   "Failure",
		Message:  msg,
		Reason:   reason,
		Code:     code,
	}}
}

func (e *statusError) withDetails(info *api.ResourceInfo, name string) *statusError {
	d := &api.StatusDetails{Name: name}
	if info != nil {
		d.Group = info.Group
		d.Kind = info.Resource
	}
	e.status.Details = d
	return e
}

func (e *statusError) withRetryAfter(s int) *statusError {
	e.retryAfter = s
	if e.status.Details == nil {
		e.status.Details = &api.StatusDetails{}
	}
	e.status.Details.RetryAfterSeconds = s
	return e
}

func badRequest(format string, args ...any) *statusError {
	return newStatus(http.StatusBadRequest, api.ReasonBadRequest, fmt.Sprintf(format, args...))
}

func notFoundPath(msg string) *statusError {
	return newStatus(http.StatusNotFound, api.ReasonNotFound, msg)
}

func methodNotAllowed(method, what string) *statusError {
	return newStatus(http.StatusMethodNotAllowed, api.ReasonMethodNotAllowed,
		fmt.Sprintf("method %s is not supported on %s", method, what))
}

func unavailable(msg string) *statusError {
	return newStatus(http.StatusServiceUnavailable, api.ReasonServiceUnavailable, msg).withRetryAfter(1)
}

func invalid(info *api.ResourceInfo, name string, errs api.FieldErrors) *statusError {
	kind := ""
	if info != nil {
		kind = string(info.Kind)
	}
	msg := fmt.Sprintf("%s %q is invalid: %s", kind, name, errs.Error())
	e := newStatus(http.StatusUnprocessableEntity, api.ReasonInvalid, msg).withDetails(info, name)
	e.status.Details.Kind = kind
	e.status.Details.Causes = errs.Causes()
	return e
}

// qualified is the object's name as kubectl's messages show it: the name
// alone (the namespace is in the request).
func qualified(_, name string) string { return name }

// storeError converts an error of a store call (or of decoding and
// validation) to the Status answered for it.
func storeError(err error, info *api.ResourceInfo, ns, name string) *statusError {
	var se *statusError
	if errors.As(err, &se) {
		return se
	}
	var fe api.FieldErrors
	if errors.As(err, &fe) && len(fe) > 0 {
		return invalid(info, name, fe)
	}
	res := "object"
	if info != nil {
		res = info.GroupResource()
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newStatus(http.StatusNotFound, api.ReasonNotFound,
			fmt.Sprintf("%s %q not found", res, qualified(ns, name))).withDetails(info, name)
	case errors.Is(err, store.ErrAlreadyExists):
		return newStatus(http.StatusConflict, api.ReasonAlreadyExists,
			fmt.Sprintf("%s %q already exists", res, qualified(ns, name))).withDetails(info, name)
	case errors.Is(err, store.ErrConflict):
		return newStatus(http.StatusConflict, api.ReasonConflict,
			fmt.Sprintf("operation cannot be fulfilled on %s %q: %v; read the latest version and try again", res, qualified(ns, name), err)).withDetails(info, name)
	case errors.Is(err, store.ErrGone):
		return newStatus(http.StatusGone, api.ReasonGone, err.Error())
	case errors.Is(err, store.ErrFutureVersion):
		return badRequest("%v", err)
	case errors.Is(err, store.ErrUnknownOutcome):
		e := unavailable(fmt.Sprintf("leadership was lost while writing %s %q: the write may have been applied; read the object before retrying", res, qualified(ns, name)))
		e.unknown = true
		return e.withDetails(info, name).withRetryAfter(1)
	case errors.Is(err, store.ErrNotLeader):
		return unavailable("this server is not the leader and the request could not be forwarded")
	case errors.Is(err, store.ErrInvalid):
		return newStatus(http.StatusUnprocessableEntity, api.ReasonInvalid,
			fmt.Sprintf("%s %q is invalid: %v", res, qualified(ns, name), err)).withDetails(info, name)
	case errors.Is(err, context.DeadlineExceeded):
		e := newStatus(http.StatusGatewayTimeout, api.ReasonTimeout,
			fmt.Sprintf("timed out on %s %q; a write may have been applied: %v", res, qualified(ns, name), err))
		e.unknown = true
		return e
	case errors.Is(err, context.Canceled):
		// The client went away; the answer is not read by anyone.
		e := newStatus(499, api.ReasonTimeout, "request canceled: "+err.Error())
		e.unknown = true
		return e
	}
	return newStatus(http.StatusInternalServerError, api.ReasonInternalError, err.Error())
}

// writeStatus answers with e's Status.
func writeStatus(w http.ResponseWriter, e *statusError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.unknown {
		h.Set(HeaderWriteOutcome, "unknown")
	}
	w.WriteHeader(e.status.Code)
	b, _ := json.Marshal(&e.status)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSON answers 200 (or code) with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeStatus(w, newStatus(http.StatusInternalServerError, api.ReasonInternalError, "encoding response: "+err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
