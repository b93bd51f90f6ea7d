package apiserver

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// InitialEventsEndAnnotation marks the bookmark sent after the initial
// ADDED events of a watch started without a resourceVersion (Kubernetes'
// name): a client resumes from its resourceVersion, not from the objects'
// own versions, which are not ordered.
const InitialEventsEndAnnotation = "k8s.io/initial-events-end"

// maxBatch bounds how many queued events are written between two flushes.
const maxBatch = 256

func (s *Server) watch(w http.ResponseWriter, r *http.Request, t target) {
	q := r.URL.Query()
	opts, serr := listOptions(q, t)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true" || q.Get("allowWatchBookmarks") == "1"
	var timeout <-chan time.Time
	if v := q.Get("timeoutSeconds"); v != "" {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			writeStatus(w, badRequest("invalid timeoutSeconds %q", v))
			return
		}
		if secs > 0 {
			tm := time.NewTimer(time.Duration(secs) * time.Second)
			defer tm.Stop()
			timeout = tm.C
		}
	}

	var (
		initial []api.Object
		startRV uint64 // the list's version, or the one resumed from
		watcher store.Watcher
		err     error
	)
	rvParam := q.Get("resourceVersion")
	fromList := rvParam == "" || rvParam == "0"
	if fromList {
		initial, startRV, watcher, err = s.store.ListAndWatch(t.info.Kind, opts)
	} else {
		rv, perr := strconv.ParseUint(rvParam, 10, 64)
		if perr != nil {
			writeStatus(w, badRequest("invalid resourceVersion %q: want a non-negative integer", rvParam))
			return
		}
		startRV = rv
		// The store waits a moment for a version it has not applied yet.
		watcher, err = s.store.Watch(t.info.Kind, opts, rv)
		switch {
		case errors.Is(err, store.ErrGone):
			writeStatus(w, newStatus(http.StatusGone, api.ReasonGone, fmt.Sprintf(
				"resourceVersion %d is too old (%v): relist and watch from the list's resourceVersion", rv, err)))
			return
		case errors.Is(err, store.ErrFutureVersion):
			writeStatus(w, futureVersion(rv, s.store.LastIndex()))
			return
		}
	}
	if err != nil {
		writeStatus(w, storeError(err, &t.info, t.namespace, ""))
		return
	}
	defer watcher.Stop()
	s.metrics.OpenWatches.Inc()
	defer s.metrics.OpenWatches.Dec()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, private")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 16<<10)
	flush := func() bool {
		if bw.Flush() != nil {
			return false
		}
		return rc.Flush() == nil
	}

	for _, o := range initial {
		if !s.writeEvent(bw, t.info, store.Added, o) {
			return
		}
	}
	if fromList && bookmarks {
		writeBookmark(bw, t.info, startRV, true)
	}
	if !flush() {
		return
	}

	var tick <-chan time.Time
	if bookmarks {
		ticker := time.NewTicker(s.cfg.BookmarkInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
	events := watcher.Events()
	// lastRV is the version of the last event sent (or the watch's
	// start). Bookmarks repeat even when nothing changed: they are the
	// stream's keep-alive.
	lastRV := startRV
	for {
		select {
		case <-r.Context().Done():
			return
		case <-timeout:
			return
		case ev, ok := <-events:
			if !ok {
				// The store dropped the watcher (it fell behind, or the store
				// was restored): end the stream cleanly; the client resumes
				// from the last resourceVersion it saw.
				s.log.Debug("watch closed by store", "kind", t.info.Kind, "err", watcher.Err())
				flush()
				return
			}
			if !s.writeEvent(bw, t.info, ev.Type, ev.Object) {
				return
			}
			lastRV = max(lastRV, ev.ResourceVersion)
			// Write whatever else is queued before flushing once.
		batch:
			for n := 1; n < maxBatch; n++ {
				select {
				case ev, ok = <-events:
					if !ok {
						flush()
						return
					}
					if !s.writeEvent(bw, t.info, ev.Type, ev.Object) {
						return
					}
					lastRV = max(lastRV, ev.ResourceVersion)
				default:
					break batch
				}
			}
			if !flush() {
				return
			}
		case <-tick:
			// The store's Progress covers only events this loop has
			// already received (and written above), so a client resuming
			// from the bookmark never skips one.
			rv := max(watcher.Progress(), lastRV)
			writeBookmark(bw, t.info, rv, false)
			if !flush() {
				return
			}
		}
	}
}

func (s *Server) writeEvent(bw *bufio.Writer, info api.ResourceInfo, typ store.EventType, o api.Object) bool {
	b, err := s.enc.encode(info, o)
	if err != nil {
		s.log.Error("encoding watch event", "kind", info.Kind, "err", err)
		return false
	}
	_, _ = bw.WriteString(`{"type":"`)
	_, _ = bw.WriteString(string(typ))
	_, _ = bw.WriteString(`","object":`)
	_, _ = bw.Write(b)
	_, err = bw.WriteString("}\n")
	return err == nil
}

func writeBookmark(bw *bufio.Writer, info api.ResourceInfo, rv uint64, initialEnd bool) {
	ann := ""
	if initialEnd {
		ann = `,"annotations":{"` + InitialEventsEndAnnotation + `":"true"}`
	}
	fmt.Fprintf(bw, `{"type":"BOOKMARK","object":{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"%s}}}`+"\n",
		string(info.Kind), info.APIVersion(), rv, ann)
}
