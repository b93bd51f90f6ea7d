package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/skiffhq/skiff/api"
)

// writeError answers an api.Status, the body every skiff error has (the
// API server relays it to the client unchanged).
func writeError(w http.ResponseWriter, code int, msg string) {
	st := api.Status{
		TypeMeta: api.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   "Failure",
		Message:  msg,
		Reason:   reasonFor(code),
		Code:     code,
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	b, _ := json.Marshal(&st)
	_, _ = w.Write(append(b, '\n'))
}

func reasonFor(code int) api.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return api.ReasonBadRequest
	case http.StatusForbidden:
		return api.ReasonForbidden
	case http.StatusNotFound:
		return api.ReasonNotFound
	case http.StatusRequestEntityTooLarge:
		return api.ReasonRequestEntityTooLarge
	case http.StatusServiceUnavailable:
		return api.ReasonServiceUnavailable
	}
	return api.ReasonInternalError
}

// lookupError answers a Containers.Lookup failure with Kubernetes' words.
func (s *Server) lookupError(w http.ResponseWriter, namespace, pod, container string, err error) {
	switch {
	case errors.Is(err, ErrPodNotFound):
		msg := fmt.Sprintf("pod %q not found in namespace %q", pod, namespace)
		if s.cfg.NodeName != "" {
			msg += fmt.Sprintf(" on node %q", s.cfg.NodeName)
		}
		writeError(w, http.StatusNotFound, msg)
	case errors.Is(err, ErrContainerNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("container %q in pod %q not found", container, pod))
	case errors.Is(err, ErrNoPrevious):
		writeError(w, http.StatusNotFound, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod))
	case errors.Is(err, ErrContainerNotStarted):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start", container, pod))
	default:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("find container %q of pod %s/%s: %v", container, namespace, pod, err))
	}
}
