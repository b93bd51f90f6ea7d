package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// ErrUnknownOutcome wraps the error of a write whose request may have
// reached the server (the connection failed after it was sent, or the
// server lost leadership while committing it): it may or may not have been
// applied. Read the object before retrying.
var ErrUnknownOutcome = errors.New("write outcome unknown: it may have been applied")

// headerWriteOutcome mirrors the API server's header marking such writes.
const headerWriteOutcome = "X-Skiff-Write-Outcome"

func statusOf(err error) *api.Status {
	var s *api.Status
	if errors.As(err, &s) {
		return s
	}
	return nil
}

func hasReason(err error, reason api.StatusReason, code int) bool {
	s := statusOf(err)
	if s == nil {
		return false
	}
	if s.Reason != "" {
		return s.Reason == reason
	}
	return s.Code == code
}

// IsNotFound reports a 404 NotFound answer.
func IsNotFound(err error) bool { return hasReason(err, api.ReasonNotFound, http.StatusNotFound) }

// IsAlreadyExists reports a create of an object that exists.
func IsAlreadyExists(err error) bool {
	return hasReason(err, api.ReasonAlreadyExists, -1)
}

// IsConflict reports a failed precondition (stale resourceVersion or uid).
func IsConflict(err error) bool { return hasReason(err, api.ReasonConflict, http.StatusConflict) }

// IsGone reports a watch resourceVersion too old to resume from.
func IsGone(err error) bool { return hasReason(err, api.ReasonGone, http.StatusGone) }

// IsInvalid reports a rejected object; its causes name the fields.
func IsInvalid(err error) bool {
	return hasReason(err, api.ReasonInvalid, http.StatusUnprocessableEntity)
}

// IsUnavailable reports that no server could answer (no leader, all down).
func IsUnavailable(err error) bool {
	return hasReason(err, api.ReasonServiceUnavailable, http.StatusServiceUnavailable)
}

// IsUnknownOutcome reports a write that may or may not have been applied.
func IsUnknownOutcome(err error) bool { return errors.Is(err, ErrUnknownOutcome) }

// decodeStatus turns a non-2xx answer into an *api.Status, building one
// from the HTTP code when the body is not a Status.
func decodeStatus(resp *http.Response, body []byte) *api.Status {
	var s api.Status
	if err := jsonUnmarshal(body, &s); err == nil && s.Kind == "Status" && s.Code != 0 {
		return &s
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 256 {
		msg = msg[:256] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &api.Status{
		TypeMeta: api.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   "Failure",
		Code:     resp.StatusCode,
		Reason:   reasonForCode(resp.StatusCode),
		Message:  fmt.Sprintf("%s %s: HTTP %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, msg),
	}
}

func reasonForCode(code int) api.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return api.ReasonBadRequest
	case http.StatusUnauthorized:
		return api.ReasonUnauthorized
	case http.StatusForbidden:
		return api.ReasonForbidden
	case http.StatusNotFound:
		return api.ReasonNotFound
	case http.StatusMethodNotAllowed:
		return api.ReasonMethodNotAllowed
	case http.StatusConflict:
		return api.ReasonConflict
	case http.StatusGone:
		return api.ReasonGone
	case http.StatusRequestEntityTooLarge:
		return api.ReasonRequestEntityTooLarge
	case http.StatusUnsupportedMediaType:
		return api.ReasonUnsupportedMediaType
	case http.StatusUnprocessableEntity:
		return api.ReasonInvalid
	case http.StatusTooManyRequests:
		return api.ReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return api.ReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return api.ReasonTimeout
	}
	return api.ReasonInternalError
}
