package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
)

// initialEventsEnd is the annotation of the bookmark the server sends after
// the initial ADDED events of a watch started without a resourceVersion.
const initialEventsEnd = "k8s.io/initial-events-end"

// Watch is a stream of changes that survives dropped connections and dead
// servers: it resumes from the last resourceVersion it delivered (events
// and bookmarks), on any server, and relists when that version is too old
// (a Relisted event, then ADDED for every object).
type Watch struct {
	c      *Client
	info   api.ResourceInfo
	opts   ListOptions
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// Events delivers the changes. It is closed when the watch ends: after
// Stop, when the context ends, or on an error no retry can fix (Err).
func (w *Watch) Events() <-chan Event { return w.events }

// Stop ends the watch and waits for its goroutine to exit.
func (w *Watch) Stop() {
	w.cancel()
	<-w.done
}

// Err is why the watch ended on its own (nil while running or after Stop).
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Watch streams changes to objects of kind matching opts after
// resourceVersion; "" (or "0") first delivers every matching object as
// ADDED. Opening the first stream is synchronous: its error (a bad
// selector, an unknown kind, a version too old) is returned here.
func (c *Client) Watch(ctx context.Context, kind api.Kind, opts ListOptions, resourceVersion string) (*Watch, error) {
	info, err := resourceInfo(kind)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{
		c: c, info: info, opts: opts,
		events: make(chan Event, 128),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	body, err := w.open(ctx, resourceVersion)
	if err != nil {
		cancel()
		return nil, err
	}
	go w.run(ctx, body, resourceVersion)
	return w, nil
}

// open starts one stream. Connecting (failover included) is bounded by the
// client's timeout; the stream itself is not.
func (w *Watch) open(ctx context.Context, rv string) (io.ReadCloser, error) {
	q := url.Values{"watch": {"true"}, "allowWatchBookmarks": {"true"}}
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	w.opts.query(q)
	path := resourcePath(w.info, w.opts.Namespace, "", "") + "?" + q.Encode()

	sctx, scancel := context.WithCancel(ctx)
	var timer *time.Timer
	if w.c.timeout > 0 {
		timer = time.AfterFunc(w.c.timeout, scancel)
	}
	resp, err := w.c.send(sctx, http.MethodGet, path, nil, true)
	if timer != nil && !timer.Stop() {
		// The timeout fired while connecting.
		if err == nil {
			resp.Body.Close()
		}
		scancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("client: opening watch of %s: timed out after %v", w.info.Resource, w.c.timeout)
	}
	if err != nil {
		scancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		scancel()
		return nil, decodeStatus(resp, b)
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: scancel}, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	b.cancel()
	return b.ReadCloser.Close()
}

// resumeState is where a broken stream picks up.
type resumeState struct {
	rv string
	// initial: the stream started without a version and has not finished
	// sending the initial objects; their own versions are no resume point.
	initial bool
	// delivered: some event of the current initial listing went out.
	delivered bool
}

// errStreamGone is a 410 delivered inside a stream (ERROR event).
var errStreamGone = errors.New("watch: resourceVersion too old")

func (w *Watch) run(ctx context.Context, body io.ReadCloser, rv string) {
	defer close(w.done)
	defer close(w.events)
	st := resumeState{rv: rv, initial: rv == "" || rv == "0"}
	backoff := minBackoff
	for {
		err := w.consume(ctx, body, &st)
		body.Close()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, errStreamGone) {
			// The server is probably gone: so are its pooled connections.
			w.c.http.CloseIdleConnections()
		}
		if err == nil || !errors.Is(err, errStreamGone) {
			// Dropped, ended by the server or silent too long: resume.
			body, err = w.reopen(ctx, &st, &backoff)
		}
		if errors.Is(err, errStreamGone) {
			body, err = w.relist(ctx, &st, &backoff)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.setErr(err)
			}
			return
		}
		backoff = minBackoff
	}
}

// reopen resumes after a broken stream until it works, the context ends,
// or an error no retry fixes.
func (w *Watch) reopen(ctx context.Context, st *resumeState, backoff *time.Duration) (io.ReadCloser, error) {
	for {
		rv := st.rv
		if st.initial {
			rv = "" // start the listing over
		}
		body, err := w.open(ctx, rv)
		if err == nil {
			if st.initial && st.delivered {
				st.delivered = false
				if !w.deliver(ctx, Event{Type: Relisted}) {
					body.Close()
					return nil, ctx.Err()
				}
			}
			return body, nil
		}
		if IsGone(err) {
			return nil, errStreamGone
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if terminal(err) {
			return nil, err
		}
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
	}
}

// relist lists again after the resume point was compacted away, delivers
// Relisted and the objects, and watches from the list's version.
func (w *Watch) relist(ctx context.Context, st *resumeState, backoff *time.Duration) (io.ReadCloser, error) {
	for {
		l, err := w.c.List(ctx, w.info.Kind, w.opts)
		if err == nil {
			if !w.deliver(ctx, Event{Type: Relisted}) {
				return nil, ctx.Err()
			}
			for _, o := range l.Items {
				if !w.deliver(ctx, Event{Type: Added, Object: o}) {
					return nil, ctx.Err()
				}
			}
			st.rv, st.initial, st.delivered = l.ResourceVersion, false, false
			body, err := w.open(ctx, l.ResourceVersion)
			if err == nil {
				return body, nil
			}
			if !IsGone(err) && terminal(err) {
				return nil, err
			}
		} else if terminal(err) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
	}
}

// terminal reports an error no retry fixes: a 4xx other than 400 (a
// resumed version a lagging server has not reached yet), 410 and 429.
func terminal(err error) bool {
	s := statusOf(err)
	if s == nil {
		return false
	}
	switch {
	case s.Code == http.StatusBadRequest, s.Code == http.StatusGone, s.Code == http.StatusTooManyRequests:
		return false
	case s.Code >= 400 && s.Code < 500:
		return true
	}
	return false
}

func sleep(ctx context.Context, backoff *time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(2**backoff, maxBackoff)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type wireEvent struct {
	Type   EventType       `json:"type"`
	Object json.RawMessage `json:"object"`
}

// consume delivers the events of one stream until it ends. A stream silent
// for longer than the idle timeout is closed (its server is presumed gone).
func (w *Watch) consume(ctx context.Context, body io.ReadCloser, st *resumeState) error {
	var idle *time.Timer
	if w.c.idle > 0 {
		idle = time.AfterFunc(w.c.idle, func() { body.Close() })
		defer idle.Stop()
	}
	dec := json.NewDecoder(body)
	for {
		var we wireEvent
		if err := dec.Decode(&we); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if idle != nil {
			idle.Reset(w.c.idle)
		}
		if we.Type == "ERROR" {
			var s api.Status
			if json.Unmarshal(we.Object, &s) == nil && s.Code == http.StatusGone {
				return errStreamGone
			}
			return fmt.Errorf("watch error: %s", we.Object)
		}
		o, err := decodeObject(w.info, we.Object)
		if err != nil {
			return err
		}
		m := o.GetObjectMeta()
		switch we.Type {
		case Bookmark:
			if st.initial && m.Annotations[initialEventsEnd] == "true" {
				st.initial = false
			}
		case Added, Modified, Deleted:
		default:
			return fmt.Errorf("watch: unknown event type %q", we.Type)
		}
		if !w.deliver(ctx, Event{Type: we.Type, Object: o}) {
			return ctx.Err()
		}
		if st.initial {
			st.delivered = true
		} else if m.ResourceVersion != "" {
			st.rv = m.ResourceVersion
		}
	}
}

func (w *Watch) deliver(ctx context.Context, ev Event) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Watch) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}
