package store

import (
	"sync"
	"sync/atomic"

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
//
// Watchers are indexed so that an event is offered only to those that may
// want it: by kind, and pod watchers with an exact spec.nodeName selector
// (every node agent's) by node. 5,000 agents then cost nothing per event of
// another node's pod.
type hub struct {
	mu        sync.Mutex
	capacity  int
	events    []histEvent
	compacted uint64 // every event with rv > compacted is in events
	watchers  map[*watcher]struct{}
	byKind    map[api.Kind]map[*watcher]struct{} // watchers without a node index
	byNode    map[string]map[*watcher]struct{}   // pod watchers by spec.nodeName
	// last is the index of the last entry published: every event at or
	// below it has been queued to its watchers (read without mu by
	// watcher.Progress).
	last atomic.Uint64
}

func newHub(capacity int) *hub {
	return &hub{capacity: capacity, watchers: map[*watcher]struct{}{},
		byKind: map[api.Kind]map[*watcher]struct{}{}, byNode: map[string]map[*watcher]struct{}{}}
}

// add and remove keep the indexes (h.mu held).
func (h *hub) add(w *watcher) {
	h.watchers[w] = struct{}{}
	if w.indexed {
		if h.byNode[w.node] == nil {
			h.byNode[w.node] = map[*watcher]struct{}{}
		}
		h.byNode[w.node][w] = struct{}{}
		return
	}
	if h.byKind[w.kind] == nil {
		h.byKind[w.kind] = map[*watcher]struct{}{}
	}
	h.byKind[w.kind][w] = struct{}{}
}

func (h *hub) remove(w *watcher) {
	delete(h.watchers, w)
	if w.indexed {
		delete(h.byNode[w.node], w)
		if len(h.byNode[w.node]) == 0 {
			delete(h.byNode, w.node)
		}
		return
	}
	delete(h.byKind[w.kind], w)
}

func (h *hub) publish(rv uint64, evs []event) {
	if len(evs) == 0 {
		h.last.Store(rv)
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
	for _, e := range evs {
		kind := api.KindOf(e.obj)
		h.offer(h.byKind[kind], e, rv)
		if kind != api.KindPod {
			continue
		}
		node := e.obj.(*api.Pod).Spec.NodeName
		h.offer(h.byNode[node], e, rv)
		if e.old != nil {
			if was := e.old.(*api.Pod).Spec.NodeName; was != node {
				h.offer(h.byNode[was], e, rv)
			}
		}
	}
	h.last.Store(rv)
}

// offer queues e to the watchers of set that want it, dropping those too
// slow to keep up (h.mu held).
func (h *hub) offer(set map[*watcher]struct{}, e event, rv uint64) {
	for w := range set {
		if ev, ok := w.filter(e, rv); ok && !w.push(ev) {
			h.remove(w)
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
	h.add(w)
	return nil
}

func (h *hub) unregister(w *watcher) {
	h.mu.Lock()
	h.remove(w)
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
		h.remove(w)
	}
	h.last.Store(index)
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
	// indexed: a pod watch with an exact spec.nodeName=node requirement.
	indexed bool
	node    string

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
	var node string
	indexed := false
	if kind == api.KindPod && opts.Fields != nil {
		node, indexed = api.ExactMatch(opts.Fields, api.FieldPodNodeName)
	}
	return &watcher{indexed: indexed, node: node,
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
	if opts.OwnerUID != "" && !ownedBy(m, opts.OwnerUID) {
		return false
	}
	return true
}

func ownedBy(m *api.ObjectMeta, uid api.UID) bool {
	for _, r := range m.OwnerReferences {
		if r.UID == uid {
			return true
		}
	}
	return false
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

// Progress implements Watcher. The hub's last published index is read
// before the queue is looked at: every event at or below it was queued by
// then, so an empty queue means they were all received.
func (w *watcher) Progress() uint64 {
	last := w.hub.last.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 && !w.sending {
		return max(w.progress, last)
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
		last := w.hub.last.Load() // before taking the batch: see Progress
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closed := w.closed
		upTo := max(w.progress, last)
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
