package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/nodeagent/logs"
)

// aliveInterval is how often a log follower asks whether its container
// still runs.
const aliveInterval = time.Second

// containerLogs answers GET /containerLogs/{namespace}/{pod}/{container}
// with the container's log as text, kubectl's options in the query.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, ctr := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	opts := logs.ReadOptions{Tail: -1}
	var err error
	if opts.Follow, err = boolParam(q.Get("follow")); err != nil {
		writeError(w, http.StatusBadRequest, "follow: "+err.Error())
		return
	}
	previous, err := boolParam(q.Get("previous"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "previous: "+err.Error())
		return
	}
	if opts.Timestamps, err = boolParam(q.Get("timestamps")); err != nil {
		writeError(w, http.StatusBadRequest, "timestamps: "+err.Error())
		return
	}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "tailLines: "+strconv.Quote(v)+" is not a non-negative integer")
			return
		}
		opts.Tail = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "sinceSeconds: "+strconv.Quote(v)+" is not a positive integer")
			return
		}
		opts.SinceTime = s.cfg.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "sinceTime: "+strconv.Quote(v)+" is not an RFC 3339 time")
			return
		}
		opts.SinceTime = t
	}

	ref, err := s.cfg.Containers.Lookup(ns, pod, ctr, previous)
	if err != nil {
		s.lookupError(w, ns, pod, ctr, err)
		return
	}
	if ref.LogPath == "" {
		writeError(w, http.StatusNotFound, "container "+strconv.Quote(ctr)+" in pod "+strconv.Quote(pod)+" keeps no log")
		return
	}
	if opts.Follow {
		opts.Alive = s.aliveFunc(ref, ns, pod, ctr, previous)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if opts.Follow {
		// Show the answer started, before the first line comes.
		_ = http.NewResponseController(w).Flush()
	}
	err = logs.Read(r.Context(), ref.LogPath, opts, w)
	switch {
	case err == nil, errors.Is(err, logs.ErrNoLog), r.Context().Err() != nil:
		// Nothing written yet is an empty log; a client that left is done.
	default:
		s.log.Warn("reading container log", "namespace", ns, "pod", pod, "container", ctr, "err", err)
	}
}

// aliveFunc reports whether the container a follower reads is still the
// running instance, asking Containers at most once per aliveInterval.
func (s *Server) aliveFunc(ref ContainerRef, ns, pod, ctr string, previous bool) func() bool {
	if !ref.Running || previous {
		return func() bool { return false }
	}
	var mu sync.Mutex
	last, alive := s.cfg.Now(), true
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		if now := s.cfg.Now(); alive && now.Sub(last) >= aliveInterval {
			last = now
			cur, err := s.cfg.Containers.Lookup(ns, pod, ctr, false)
			alive = err == nil && cur.ID == ref.ID && cur.Running
		}
		return alive
	}
}

// boolParam parses a query flag as Kubernetes does ("" is false).
func boolParam(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}
