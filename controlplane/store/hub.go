package store

import (
	"sync"

	"github.com/skiffhq/skiff/api"
)

// event is a change as the FSM records it; old is the previous state for
// Modified (used to turn label-selector transitions into ADDED/DELETED).
type event struct {
	typ EventType
	obj api.Object
	old api.Object
}

type histEvent struct {
	event
	rv uint64
}

// maxWatcherQueue bounds the events queued for one slow watcher; past it the
// watcher is closed with ErrWatchClosed and resumes (or relists) itself.
const maxWatcherQueue = 100000

// hub keeps a bounded history of events and fans them out to watchers.
// publish and register are called with the FSM lock held (write and read
// respectively); hub.mu orders them against Stop.
type hub struct {
	mu        sync.Mutex
	capacity  int
	events    []histEvent
	compacted uint64 // every event with rv > compacted is in events
	watchers  map[*watcher]struct{}
}

func newHub(capacity int) *hub {
	return &hub{capacity: capacity, watchers: map[*watcher]struct{}{}}
}

func (h *hub) publish(rv uint64, evs []event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		h.events = append(h.events, histEvent{event: e, rv: rv})
	}
	if over := len(h.events) - h.capacity; over > 0 {
		h.compacted = h.events[over-1].rv
		h.events = h.events[over:]
	}
	for w := range h.watchers {
		alive := true
		for _, e := range evs {
			if ev, ok := w.filter(e, rv); ok {
				if alive = w.push(ev); !alive {
					delete(h.watchers, w)
					break
				}
			}
		}
		if alive {
			w.advance(rv)
		}
	}
}

// register adds a watcher and queues the history after fromRV; current is
// the FSM's index (the caller holds the FSM lock).
func (h *hub) register(w *watcher, fromRV, current uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fromRV < h.compacted {
		return ErrGone
	}
	for _, e := range h.events {
		if e.rv <= fromRV {
			continue
		}
		if ev, ok := w.filter(e.event, e.rv); ok {
			if !w.push(ev) {
				return ErrGone
			}
		}
	}
	w.advance(current)
	h.watchers[w] = struct{}{}
	return nil
}

func (h *hub) unregister(w *watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
}

// reset drops history and closes every watcher (after a snapshot restore).
func (h *hub) reset(index uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = nil
	h.compacted = index
	for w := range h.watchers {
		w.close(ErrWatchClosed)
		delete(h.watchers, w)
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// watcher delivers one watch's events through an unbounded (but capped)
// queue, so publishing never blocks the FSM.
type watcher struct {
	hub  *hub
	kind api.Kind
	opts ListOptions

	mu     sync.Mutex
	queue  []Event
	closed bool
	err    error
	signal chan struct{}
	// progress is the index of the last entry the hub processed for this
	// watcher; delivered the progress as of the last batch fully received
	// by the consumer; sending is true while a batch is being handed over.
	progress  uint64
	delivered uint64
	sending   bool

	out      chan Event
	stop     chan struct{}
	stopOnce sync.Once
}

var _ Watcher = (*watcher)(nil)

func newWatcher(h *hub, kind api.Kind, opts ListOptions) *watcher {
	return &watcher{
		hub: h, kind: kind, opts: opts,
		signal: make(chan struct{}, 1),
		out:    make(chan Event), // unbuffered: a sent event has been received
		stop:   make(chan struct{}),
	}
}

func (w *watcher) matches(o api.Object) bool {
	return matches(o, w.opts)
}

func matches(o api.Object, opts ListOptions) bool {
	m := o.GetObjectMeta()
	if opts.Namespace != "" && m.Namespace != opts.Namespace {
		return false
	}
	if opts.Labels != nil && !opts.Labels.Empty() && !opts.Labels.Matches(m.Labels) {
		return false
	}
	if opts.Fields != nil && !opts.Fields.Empty() && !opts.Fields.Matches(o) {
		return false
	}
	return true
}

// filter maps a stored event to what this watcher sees, if anything.
func (w *watcher) filter(e event, rv uint64) (Event, bool) {
	if api.KindOf(e.obj) != w.kind {
		return Event{}, false
	}
	switch e.typ {
	case Added:
		if w.matches(e.obj) {
			return Event{Type: Added, Object: e.obj, ResourceVersion: rv}, true
		}
	case Deleted:
		if w.matches(e.obj) || (e.old != nil && w.matches(e.old)) {
			return Event{Type: Deleted, Object: e.obj, ResourceVersion: rv}, true
		}
	case Modified:
		nowIn, wasIn := w.matches(e.obj), e.old != nil && w.matches(e.old)
		switch {
		case nowIn && wasIn:
			return Event{Type: Modified, Object: e.obj, ResourceVersion: rv}, true
		case nowIn:
			return Event{Type: Added, Object: e.obj, ResourceVersion: rv}, true
		case wasIn:
			return Event{Type: Deleted, Object: e.obj, ResourceVersion: rv}, true
		}
	}
	return Event{}, false
}

// push queues an event; false means the watcher is closed (too slow).
func (w *watcher) push(e Event) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	if len(w.queue) >= maxWatcherQueue {
		w.closed, w.err = true, ErrWatchClosed
		w.mu.Unlock()
		w.wake()
		return false
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	w.wake()
	return true
}

// advance records that every event up to rv has been queued.
func (w *watcher) advance(rv uint64) {
	w.mu.Lock()
	if rv > w.progress {
		w.progress = rv
	}
	w.mu.Unlock()
}

// Progress implements Watcher.
func (w *watcher) Progress() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 && !w.sending {
		return w.progress
	}
	return w.delivered
}

func (w *watcher) close(err error) {
	w.mu.Lock()
	if !w.closed {
		w.closed, w.err = true, err
	}
	w.mu.Unlock()
	w.wake()
}

func (w *watcher) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// run forwards queued events to out until closed or stopped. It is the
// watcher's one goroutine, started by Watch and ended by Stop or close.
func (w *watcher) run() {
	defer close(w.out)
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closed := w.closed
		upTo := w.progress
		w.sending = len(batch) > 0
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case w.out <- e:
			case <-w.stop:
				return
			}
		}
		if len(batch) > 0 {
			w.mu.Lock()
			w.sending = false
			w.delivered = upTo
			w.mu.Unlock()
			continue
		}
		if closed {
			return
		}
		select {
		case <-w.signal:
		case <-w.stop:
			return
		}
	}
}

func (w *watcher) Events() <-chan Event { return w.out }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) Stop() {
	w.stopOnce.Do(func() {
		w.hub.unregister(w)
		w.close(nil)
		close(w.stop)
	})
}
