package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster != nil && !s.cfg.Cluster.Ready() {
		writeStatus(w, unavailable("not ready: no leader is known or this server has not caught up with the log"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeStatus(w, methodNotAllowed(r.Method, "/skiff/v1/members"))
		return
	}
	if s.cfg.Cluster == nil {
		// A standalone server is its own leader and only member.
		idx := s.store.LastIndex()
		writeJSON(w, http.StatusOK, MembersInfo{
			Members:   []MemberInfo{{ID: s.cfg.ServerID, Suffrage: "Voter", Leader: true}},
			Leader:    s.cfg.ServerID,
			LastIndex: idx, AppliedIndex: idx, Server: s.cfg.ServerID,
		})
		return
	}
	info, err := s.cfg.Cluster.Members(r.Context())
	if err != nil {
		writeStatus(w, unavailable("reading cluster membership: "+err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeStatus(w, methodNotAllowed(r.Method, "/skiff/v1/join"))
		return
	}
	if s.cfg.Cluster == nil {
		writeStatus(w, newStatus(http.StatusNotImplemented, api.ReasonBadRequest, "this server runs without Raft and cannot add members"))
		return
	}
	body, ok := s.leaderBody(w, r)
	if !ok {
		return
	}
	var req JoinRequest
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeStatus(w, badRequest("decoding join request: %v", err))
		return
	}
	var errs api.FieldErrors
	if req.ID == "" {
		errs = append(errs, api.FieldError{Field: "id", Type: api.FieldRequired, Detail: "required"})
	}
	if req.RaftAddr == "" {
		errs = append(errs, api.FieldError{Field: "raftAddr", Type: api.FieldRequired, Detail: "required"})
	}
	if len(errs) > 0 {
		e := newStatus(http.StatusUnprocessableEntity, api.ReasonInvalid, "join request is invalid: "+errs.Error())
		e.status.Details = &api.StatusDetails{Name: req.ID, Causes: errs.Causes()}
		writeStatus(w, e)
		return
	}
	if u, ok := userFrom(r.Context()); ok && auth.IsServer(u) && u.Name != "system:server:"+req.ID {
		writeStatus(w, newStatus(http.StatusForbidden, api.ReasonForbidden,
			fmt.Sprintf("%s may not join the cluster as server %q: a server joins under its own certificate's name", u.Name, req.ID)))
		return
	}
	if err := s.cfg.Cluster.Join(r.Context(), req); err != nil {
		if errors.Is(err, store.ErrNotLeader) {
			s.forward(w, r, body)
			return
		}
		writeStatus(w, newStatus(http.StatusInternalServerError, api.ReasonInternalError,
			fmt.Sprintf("adding server %s (%s): %v", req.ID, req.RaftAddr, err)))
		return
	}
	s.log.Info("server joined", "id", req.ID, "raftAddr", req.RaftAddr, "apiAddr", req.APIAddr)
	writeJSON(w, http.StatusOK, api.Status{
		TypeMeta: api.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   "Success", Code: http.StatusOK,
		Message: fmt.Sprintf("server %s joined", req.ID),
	})
}

// HeartbeatSink records that a node's agent is alive.
type HeartbeatSink interface {
	Heartbeat(node string)
}

// heartbeat takes POST /skiff/v1/heartbeats/<node> on the leader, which
// keeps liveness in memory (no Raft write).
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeStatus(w, methodNotAllowed(r.Method, r.URL.Path))
		return
	}
	if s.cfg.Heartbeats == nil {
		writeStatus(w, notFoundPath("this server does not take heartbeats"))
		return
	}
	node := strings.TrimPrefix(r.URL.Path, auth.PathHeartbeats+"/")
	if node == "" || strings.Contains(node, "/") {
		writeStatus(w, badRequest("heartbeat path must be %s/<node>", auth.PathHeartbeats))
		return
	}
	if _, ok := s.leaderBody(w, r); !ok {
		return
	}
	s.cfg.Heartbeats.Heartbeat(node)
	// No body: thousands of agents heartbeat every few seconds, and an
	// empty answer is one HTTP/2 frame.
	w.WriteHeader(http.StatusNoContent)
}
