package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"sync"
	"time"

	jsoniter "github.com/json-iterator/go"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func (t target) key() store.Key {
	return store.Key{Kind: t.info.Kind, Namespace: t.namespace, Name: t.name}
}

// barrier makes the next local read linearizable. It returns false after
// answering the request itself (forwarded to the leader, or an error).
func (s *Server) barrier(w http.ResponseWriter, r *http.Request, t target) bool {
	if !s.store.IsLeader() {
		s.forward(w, r, nil)
		return false
	}
	if err := s.store.ReadBarrier(r.Context()); err != nil {
		if errors.Is(err, store.ErrNotLeader) {
			s.forward(w, r, nil)
			return false
		}
		writeStatus(w, storeError(err, &t.info, t.namespace, t.name))
		return false
	}
	return true
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, t target) {
	if r.URL.Query().Get("consistent") != "false" && !s.barrier(w, r, t) {
		return
	}
	o, err := s.store.Get(t.key())
	if err != nil {
		writeStatus(w, storeError(err, &t.info, t.namespace, t.name))
		return
	}
	s.writeObject(w, http.StatusOK, t.info, o)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, t target) {
	q := r.URL.Query()
	opts, serr := listOptions(q, t)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	rvParam := q.Get("resourceVersion")
	if rvParam == "" && q.Get("consistent") != "false" {
		if !s.barrier(w, r, t) {
			return
		}
	} else if rvParam != "" && rvParam != "0" {
		rv, err := strconv.ParseUint(rvParam, 10, 64)
		if err != nil {
			writeStatus(w, badRequest("invalid resourceVersion %q: want a non-negative integer", rvParam))
			return
		}
		if serr := s.waitForIndex(r.Context(), rv); serr != nil {
			writeStatus(w, serr)
			return
		}
	}
	items, rv, err := s.store.List(t.info.Kind, opts)
	if err != nil {
		writeStatus(w, storeError(err, &t.info, t.namespace, ""))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	fmt.Fprintf(bw, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"},"items":[`,
		string(t.info.Kind)+"List", t.info.APIVersion(), rv)
	for i, o := range items {
		b, err := s.enc.encode(t.info, o)
		if err != nil {
			// Nothing useful can follow half a list: abort the response.
			s.log.Error("encoding list item", "kind", t.info.Kind, "err", err)
			panic(http.ErrAbortHandler)
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(b)
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
}

// listOptions reads the namespace and selectors of a list or watch.
func listOptions(q url.Values, t target) (store.ListOptions, *statusError) {
	opts := store.ListOptions{Namespace: t.namespace}
	if v := q.Get("labelSelector"); v != "" {
		sel, err := api.ParseSelector(v)
		if err != nil {
			return opts, badRequest("invalid labelSelector %q: %v", v, err)
		}
		opts.Labels = sel
	}
	if v := q.Get("fieldSelector"); v != "" {
		sel, err := api.ParseFieldSelector(v)
		if err != nil {
			return opts, badRequest("invalid fieldSelector %q: %v", v, err)
		}
		opts.Fields = sel
	}
	return opts, nil
}

// waitForIndex waits (up to FutureVersionWait) for the local replica to
// apply rv, so a client that read rv from the leader and then reaches a
// lagging follower is served rather than refused.
func (s *Server) waitForIndex(ctx context.Context, rv uint64) *statusError {
	if s.store.LastIndex() >= rv {
		return nil
	}
	deadline := time.NewTimer(s.cfg.FutureVersionWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return storeError(ctx.Err(), nil, "", "")
		case <-tick.C:
			if s.store.LastIndex() >= rv {
				return nil
			}
		case <-deadline.C:
			last := s.store.LastIndex()
			if last >= rv {
				return nil
			}
			return futureVersion(rv, last)
		}
	}
}

func futureVersion(rv, last uint64) *statusError {
	return badRequest("resourceVersion %d is newer than this server's latest %d", rv, last)
}

// writeObject answers with one object, its kind and apiVersion set.
func (s *Server) writeObject(w http.ResponseWriter, code int, info api.ResourceInfo, o api.Object) {
	b, err := fastJSON.Marshal(withType(info, o))
	if err != nil {
		writeStatus(w, newStatus(http.StatusInternalServerError, api.ReasonInternalError, "encoding object: "+err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// withType returns o with kind and apiVersion set, copying it (shallowly:
// the store's objects are shared and read-only) only when they are not.
func withType(info api.ResourceInfo, o api.Object) api.Object {
	tm := o.GetTypeMeta()
	if tm.Kind == string(info.Kind) && tm.APIVersion == info.APIVersion() {
		return o
	}
	v := reflect.New(reflect.TypeOf(o).Elem())
	v.Elem().Set(reflect.ValueOf(o).Elem())
	c := v.Interface().(api.Object)
	*c.GetTypeMeta() = api.TypeMeta{Kind: string(info.Kind), APIVersion: info.APIVersion()}
	return c
}

// encodeCache keeps the JSON of recently encoded objects. Stored objects are
// immutable, so one encoding serves every watcher and list that sends the
// same object: a change seen by thousands of watchers is marshalled once.
// fastJSON encodes responses: valid JSON as encoding/json writes it, but
// faster, with map keys unsorted and no HTML escaping (clients parse it;
// the CLI re-encodes what it prints).
var fastJSON = jsoniter.Config{EscapeHTML: false, SortMapKeys: false}.Froze()

type encodeCache struct {
	mu    sync.Mutex
	m     map[api.Object][]byte
	order []api.Object // FIFO ring of keys
	next  int
}

func newEncodeCache(n int) *encodeCache {
	return &encodeCache{m: make(map[api.Object][]byte, n), order: make([]api.Object, n)}
}

func (c *encodeCache) encode(info api.ResourceInfo, o api.Object) ([]byte, error) {
	c.mu.Lock()
	b, ok := c.m[o]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := fastJSON.Marshal(withType(info, o))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if old := c.order[c.next]; old != nil {
		delete(c.m, old)
	}
	c.order[c.next] = o
	c.next = (c.next + 1) % len(c.order)
	c.m[o] = b
	c.mu.Unlock()
	return b, nil
}
