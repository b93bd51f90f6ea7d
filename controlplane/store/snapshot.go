package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/skiffhq/skiff/api"
)

// snapshotHeader is the first line of a snapshot; one line per object
// follows.
type snapshotHeader struct {
	Version int                               `json:"version"`
	Index   uint64                            `json:"index"`
	System  map[SystemTable]map[string][]byte `json:"system"`
	Objects int                               `json:"objects"`
}

type snapshotObject struct {
	Kind   api.Kind        `json:"kind"`
	Object json.RawMessage `json:"object"`
}

// Snapshot captures the state at this instant; the returned function
// writes it and may run concurrently with later Applies (stored objects are
// immutable, so capturing pointers is enough).
func (f *FSM) Snapshot() (index uint64, persist func(w io.Writer) error) {
	f.mu.RLock()
	hdr := snapshotHeader{Version: 1, Index: f.index}
	hdr.System = map[SystemTable]map[string][]byte{}
	for t, recs := range f.system {
		hdr.System[t] = map[string][]byte{}
		for k, v := range recs {
			hdr.System[t][k] = v
		}
	}
	var objs []api.Object
	for _, byNS := range f.objects {
		for _, byName := range byNS {
			for _, o := range byName {
				objs = append(objs, o)
			}
		}
	}
	f.mu.RUnlock()
	hdr.Objects = len(objs)
	return hdr.Index, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		enc := json.NewEncoder(bw)
		if err := enc.Encode(hdr); err != nil {
			return fmt.Errorf("write snapshot header: %w", err)
		}
		for _, o := range objs {
			b, err := json.Marshal(o)
			if err != nil {
				return fmt.Errorf("encode %s: %w", KeyOf(o).Name, err)
			}
			if err := enc.Encode(snapshotObject{Kind: api.KindOf(o), Object: b}); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		return nil
	}
}

// Restore replaces the whole state with a snapshot. Watchers are closed
// (they resume, get 410 Gone and relist).
func (f *FSM) Restore(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	if hdr.Version != 1 {
		return fmt.Errorf("snapshot version %d not supported", hdr.Version)
	}
	fresh := NewFSM()
	for i := 0; i < hdr.Objects; i++ {
		var so snapshotObject
		if err := dec.Decode(&so); err != nil {
			return fmt.Errorf("read snapshot object %d of %d: %w", i+1, hdr.Objects, err)
		}
		o, err := decodeRecordObject(record{Kind: so.Kind, Object: so.Object})
		if err != nil {
			return fmt.Errorf("snapshot object %d: %w", i+1, err)
		}
		m := o.GetObjectMeta()
		fresh.put(so.Kind, m.Namespace, m.Name, o)
	}
	f.mu.Lock()
	f.objects = fresh.objects
	f.idx = fresh.idx
	f.alloc = fresh.alloc
	f.system = map[SystemTable]map[string][]byte{}
	for t, recs := range hdr.System {
		f.system[t] = recs
	}
	f.loadNetwork()
	f.index = hdr.Index
	f.hub.reset(hdr.Index)
	f.mu.Unlock()
	f.applied.Broadcast()
	return nil
}
