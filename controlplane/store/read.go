package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/skiffhq/skiff/api"
)

// futureWait is how long a watch from a resourceVersion this replica has not
// reached yet waits for it (a follower a little behind the leader).
const futureWait = 3 * time.Second

// Get returns one object from the local replica.
func (f *FSM) Get(key Key) (api.Object, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if o := f.get(key.Kind, key.Namespace, key.Name); o != nil {
		return o, nil
	}
	return nil, fmt.Errorf("%w: %s not found", ErrNotFound, describe(key.Kind, key.Namespace, key.Name))
}

// List returns the matching objects sorted by namespace and name.
func (f *FSM) List(kind api.Kind, opts ListOptions) ([]api.Object, uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := f.list(kind, opts)
	return out, f.index, nil
}

func (f *FSM) list(kind api.Kind, opts ListOptions) []api.Object {
	var out []api.Object
	add := func(byName map[string]api.Object) {
		for _, o := range byName {
			if matches(o, opts) {
				out = append(out, o)
			}
		}
	}
	if keys, ok := f.idx.candidates(kind, opts); ok {
		for k := range keys {
			if k.Kind != kind || (opts.Namespace != "" && k.Namespace != opts.Namespace) {
				continue
			}
			if o := f.get(k.Kind, k.Namespace, k.Name); o != nil && matches(o, opts) {
				out = append(out, o)
			}
		}
	} else if opts.Namespace != "" {
		add(f.objects[kind][opts.Namespace])
	} else {
		for _, byName := range f.objects[kind] {
			add(byName)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].GetObjectMeta(), out[j].GetObjectMeta()
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// Watch streams changes of kind after fromRV (0: from now).
func (f *FSM) Watch(kind api.Kind, opts ListOptions, fromRV uint64) (Watcher, error) {
	if fromRV > f.Index() && !f.waitIndex(fromRV, futureWait) {
		return nil, fmt.Errorf("%w: resourceVersion %d is newer than this server's latest %d", ErrFutureVersion, fromRV, f.Index())
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if fromRV == 0 {
		fromRV = f.index
	}
	w := newWatcher(f.hub, kind, opts)
	if err := f.hub.register(w, fromRV, f.index); err != nil {
		return nil, fmt.Errorf("%w: resourceVersion %d is older than the oldest kept (%d); list again", err, fromRV, f.hub.compactedRV())
	}
	go w.run()
	return w, nil
}

// ListAndWatch lists and starts watching at the list's resourceVersion in
// one step.
func (f *FSM) ListAndWatch(kind api.Kind, opts ListOptions) ([]api.Object, uint64, Watcher, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := f.list(kind, opts)
	w := newWatcher(f.hub, kind, opts)
	if err := f.hub.register(w, f.index, f.index); err != nil {
		return nil, 0, nil, err
	}
	go w.run()
	return out, f.index, w, nil
}

// LastIndex is the resourceVersion of the latest applied entry.
func (f *FSM) LastIndex() uint64 { return f.Index() }

func (h *hub) compactedRV() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.compacted
}
