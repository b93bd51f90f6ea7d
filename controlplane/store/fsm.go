package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
)

// SystemTable names a table of cluster-internal records that are not API
// objects and are never served as such.
type SystemTable string

// The system tables.
const (
	// TableMembers: control-plane servers' addresses, by server ID.
	TableMembers SystemTable = "members"
	// TableTokens: join and role tokens by token ID (secrets hashed).
	TableTokens SystemTable = "tokens"
	// TableCA: the cluster CA (certificate and key), so any leader can sign.
	TableCA SystemTable = "ca"
)

// Member is a control-plane server's addresses, replicated so every server
// can forward writes to the leader's API.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
}

// FSM is the replicated state machine. Apply, Snapshot and Restore are
// called by the log (one goroutine at a time for Apply/Restore); reads may
// run concurrently with them. Objects it holds are never mutated in place:
// every write stores a new object, so a reader may keep one it was given.
type FSM struct {
	mu      sync.RWMutex
	objects map[api.Kind]map[string]map[string]api.Object // kind -> namespace -> name
	idx     indexes                                       // owner uid, pod node
	system  map[SystemTable]map[string][]byte
	alloc   allocations
	net     NetworkConfig
	index   uint64 // last applied entry
	applied *sync.Cond
	hub     *hub
	metrics *Metrics
}

// FSMOption configures an FSM.
type FSMOption func(*FSM)

// WithHistory sets how many events the watch hub keeps for resuming
// watchers (default 10,000).
func WithHistory(n int) FSMOption { return func(f *FSM) { f.hub.capacity = n } }

// WithMetrics makes the FSM record into m.
func WithMetrics(m *Metrics) FSMOption { return func(f *FSM) { f.metrics = m } }

// NewFSM returns an empty state machine.
func NewFSM(opts ...FSMOption) *FSM {
	f := &FSM{
		objects: map[api.Kind]map[string]map[string]api.Object{},
		idx:     newIndexes(),
		system:  map[SystemTable]map[string][]byte{},
		alloc:   newAllocations(),
		net:     DefaultNetwork,
		hub:     newHub(10000),
	}
	f.applied = sync.NewCond(f.mu.RLocker())
	for _, o := range opts {
		o(f)
	}
	return f
}

// Apply applies one log entry at index and returns []Result, one per write
// in the entry (or an error if the entry itself is undecodable, which a
// correct proposer never produces).
func (f *FSM) Apply(index uint64, data []byte) any {
	start := time.Now()
	cmd, err := decodeCommand(data)
	if err != nil {
		f.mu.Lock()
		f.index = index
		f.mu.Unlock()
		f.applied.Broadcast()
		return fmt.Errorf("store: undecodable log entry %d: %w", index, err)
	}
	// Decode outside the lock: readers keep going meanwhile.
	objs := make([]api.Object, len(cmd.Ops))
	errs := make([]error, len(cmd.Ops))
	for i, r := range cmd.Ops {
		if r.Type == opPutSystem || r.Type == opDeleteSystem || r.Type == OpBind || r.Type == OpDelete || len(r.Object) == 0 {
			continue
		}
		objs[i], errs[i] = decodeRecordObject(r)
	}
	results := make([]Result, len(cmd.Ops))
	ts := api.NewTime(time.Unix(0, cmd.Time))
	f.mu.Lock()
	events := make([]event, 0, len(cmd.Ops))
	for i, r := range cmd.Ops {
		if errs[i] != nil {
			results[i] = Result{Err: errs[i]}
			continue
		}
		res, ev := f.applyOne(index, i, cmd.Time, ts, r, objs[i])
		results[i] = res
		if ev.typ != "" {
			events = append(events, ev)
		}
	}
	f.index = index
	f.hub.publish(index, events)
	f.mu.Unlock()
	f.applied.Broadcast()
	if f.metrics != nil {
		f.metrics.observeApply(time.Since(start), len(cmd.Ops), index)
	}
	return results
}

func decodeRecordObject(r record) (api.Object, error) {
	info, ok := api.ByKind(r.Kind)
	if !ok {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalid, r.Kind)
	}
	o := info.New()
	if err := fastJSON.Unmarshal(r.Object, o); err != nil {
		return nil, fmt.Errorf("%w: decode %s %q: %v", ErrInvalid, r.Kind, r.Name, err)
	}
	tm := o.GetTypeMeta()
	tm.Kind, tm.APIVersion = string(info.Kind), info.APIVersion()
	return o, nil
}

func (f *FSM) get(k api.Kind, ns, name string) api.Object {
	return f.objects[k][ns][name]
}

func (f *FSM) put(k api.Kind, ns, name string, o api.Object) {
	old := f.get(k, ns, name)
	if old != nil {
		f.alloc.index(old, false)
	}
	f.alloc.index(o, true)
	f.idx.update(Key{Kind: k, Namespace: ns, Name: name}, old, o)
	byNS := f.objects[k]
	if byNS == nil {
		byNS = map[string]map[string]api.Object{}
		f.objects[k] = byNS
	}
	byName := byNS[ns]
	if byName == nil {
		byName = map[string]api.Object{}
		byNS[ns] = byName
	}
	byName[name] = o
}

func (f *FSM) remove(k api.Kind, ns, name string) {
	if old := f.get(k, ns, name); old != nil {
		f.alloc.index(old, false)
		f.idx.update(Key{Kind: k, Namespace: ns, Name: name}, old, nil)
	}
	byName := f.objects[k][ns]
	delete(byName, name)
	if len(byName) == 0 {
		delete(f.objects[k], ns)
	}
}

func describe(k api.Kind, ns, name string) string {
	info, _ := api.ByKind(k)
	gr := info.GroupResource()
	if ns == "" {
		return fmt.Sprintf("%s %q", gr, name)
	}
	return fmt.Sprintf("%s %q in namespace %q", gr, name, ns)
}

func checkPre(cur api.Object, r record, what string) error {
	m := cur.GetObjectMeta()
	if r.RV != 0 && strconv.FormatUint(r.RV, 10) != m.ResourceVersion {
		return fmt.Errorf("%w: %s: the object has been modified (resourceVersion %s, not %d); read it again and retry", ErrConflict, what, m.ResourceVersion, r.RV)
	}
	if r.UID != "" && r.UID != m.UID {
		return fmt.Errorf("%w: %s: uid is %s, not %s", ErrConflict, what, m.UID, r.UID)
	}
	return nil
}

// applyOne applies one write with the lock held.
func (f *FSM) applyOne(index uint64, pos int, unixNano int64, ts *api.Time, r record, o api.Object) (Result, event) {
	what := describe(r.Kind, r.Namespace, r.Name)
	rv := strconv.FormatUint(index, 10)
	info, _ := api.ByKind(r.Kind)
	if (r.Type == OpCreate || r.Type == OpUpdate || r.Type == OpUpdateStatus) && o == nil {
		// Only a corrupt or hand-made entry: the write path always encodes
		// the object.
		return Result{Err: fmt.Errorf("%w: %s: the write carries no object", ErrInvalid, what)}, event{}
	}
	switch r.Type {
	case opPutSystem:
		t := SystemTable(r.Kind)
		if f.system[t] == nil {
			f.system[t] = map[string][]byte{}
		}
		f.system[t][r.Name] = append([]byte(nil), r.Object...)
		if t == TableConfig {
			f.loadNetwork()
		}
		return Result{}, event{}
	case opDeleteSystem:
		t := SystemTable(r.Kind)
		if _, ok := f.system[t][r.Name]; !ok {
			return Result{Err: fmt.Errorf("%w: %s %q not found", ErrNotFound, t, r.Name)}, event{}
		}
		delete(f.system[t], r.Name)
		return Result{}, event{}

	case OpCreate:
		if f.get(r.Kind, r.Namespace, r.Name) != nil {
			return Result{Err: fmt.Errorf("%w: %s already exists", ErrAlreadyExists, what)}, event{}
		}
		if info.Namespaced {
			if r.Namespace == "" {
				return Result{Err: fmt.Errorf("%w: %s needs a namespace", ErrInvalid, what)}, event{}
			}
			if f.get(api.KindNamespace, "", r.Namespace) == nil {
				return Result{Err: fmt.Errorf("%w: namespace %q not found", ErrNotFound, r.Namespace)}, event{}
			}
			if ns := f.get(api.KindNamespace, "", r.Namespace); ns.GetObjectMeta().DeletionTimestamp != nil {
				return Result{Err: fmt.Errorf("%w: namespace %q is being deleted", ErrConflict, r.Namespace)}, event{}
			}
		} else if r.Namespace != "" {
			return Result{Err: fmt.Errorf("%w: %s is cluster-scoped: no namespace", ErrInvalid, what)}, event{}
		}
		if err := f.allocate(KeyOf(o), o, nil); err != nil {
			return Result{Err: err}, event{}
		}
		m := o.GetObjectMeta()
		m.UID = uidFor(index, pos, unixNano)
		m.ResourceVersion = rv
		m.Generation = 1
		m.CreationTimestamp = ts
		m.DeletionTimestamp, m.DeletionGracePeriodSeconds = nil, nil
		f.put(r.Kind, r.Namespace, r.Name, o)
		return Result{Object: o}, event{typ: Added, obj: o}

	case OpUpdate, OpUpdateStatus:
		cur := f.get(r.Kind, r.Namespace, r.Name)
		if cur == nil {
			return Result{Err: fmt.Errorf("%w: %s not found", ErrNotFound, what)}, event{}
		}
		if err := checkPre(cur, r, what); err != nil {
			return Result{Err: err}, event{}
		}
		cm := cur.GetObjectMeta()
		var next api.Object
		if r.Type == OpUpdateStatus {
			if !info.HasStatus {
				return Result{Err: fmt.Errorf("%w: %s has no status", ErrInvalid, what)}, event{}
			}
			next = shallowCopy(cur)
			api.CopyStatus(next, o)
			// Status writes change status only: metadata stays the stored one.
			nm := next.GetObjectMeta()
			*nm = *cm
		} else {
			next = o
			nm := next.GetObjectMeta()
			// Server-owned metadata is kept from the stored object.
			nm.UID, nm.CreationTimestamp, nm.DeletionTimestamp = cm.UID, cm.CreationTimestamp, cm.DeletionTimestamp
			nm.DeletionGracePeriodSeconds = cm.DeletionGracePeriodSeconds
			nm.Generation = cm.Generation
			nm.GenerateName = cm.GenerateName
			if info.HasStatus {
				api.CopyStatus(next, cur)
			}
			if err := f.allocate(KeyOf(next), next, cur); err != nil {
				return Result{Err: err}, event{}
			}
			if !api.SpecEqual(next, cur) {
				nm.Generation++
			}
			nm.ResourceVersion = cm.ResourceVersion
			// Removing the last finalizer of an object being deleted
			// completes the deletion (a pod in its grace period waits for
			// its node's delete instead).
			if cm.DeletionTimestamp != nil && len(cm.Finalizers) > 0 && len(nm.Finalizers) == 0 && cm.DeletionGracePeriodSeconds == nil {
				f.remove(r.Kind, r.Namespace, r.Name)
				nm.ResourceVersion = rv
				return Result{Object: next}, event{typ: Deleted, obj: next, old: cur}
			}
		}
		if equalObjects(next, cur) {
			return Result{Object: cur}, event{} // no-op: no new version, no event
		}
		next.GetObjectMeta().ResourceVersion = rv
		f.put(r.Kind, r.Namespace, r.Name, next)
		return Result{Object: next}, event{typ: Modified, obj: next, old: cur}

	case OpBind:
		return f.bind(index, rv, ts, r, what)

	case OpDelete:
		cur := f.get(r.Kind, r.Namespace, r.Name)
		if cur == nil {
			return Result{Err: fmt.Errorf("%w: %s not found", ErrNotFound, what)}, event{}
		}
		if err := checkPre(cur, r, what); err != nil {
			return Result{Err: err}, event{}
		}
		if r.Kind == api.KindNamespace {
			for k, byNS := range f.objects {
				if n := len(byNS[r.Name]); n > 0 {
					return Result{Err: fmt.Errorf("%w: namespace %q still holds %d %s; delete them first", ErrConflict, r.Name, n, k)}, event{}
				}
			}
		}
		cm := cur.GetObjectMeta()
		if pod, ok := cur.(*api.Pod); ok {
			if res, ev, done := f.deletePodGracefully(pod, unixNano, rv, r); done {
				return res, ev
			}
		}
		if len(cm.Finalizers) > 0 {
			if cm.DeletionTimestamp != nil {
				return Result{Object: cur}, event{}
			}
			next := shallowCopy(cur)
			nm := next.GetObjectMeta()
			*nm = *cm
			nm.DeletionTimestamp = ts
			nm.ResourceVersion = rv
			f.put(r.Kind, r.Namespace, r.Name, next)
			return Result{Object: next}, event{typ: Modified, obj: next, old: cur}
		}
		f.remove(r.Kind, r.Namespace, r.Name)
		gone := shallowCopy(cur)
		gm := gone.GetObjectMeta()
		*gm = *cm
		gm.ResourceVersion = rv
		return Result{Object: cur}, event{typ: Deleted, obj: gone, old: cur}
	}
	return Result{Err: fmt.Errorf("%w: unknown operation %d", ErrInvalid, r.Type)}, event{}
}

// deletePodGracefully marks a running pod deleted with a grace period
// instead of removing it: its node stops its containers and then deletes
// it with grace 0. done is false when the pod goes at once: grace 0, or
// no node that could be running it, or it has finished.
func (f *FSM) deletePodGracefully(pod *api.Pod, unixNano int64, rv string, r record) (Result, event, bool) {
	grace := decodeGrace(r.Object, pod)
	if grace == 0 || pod.Spec.NodeName == "" || pod.Status.Phase == api.PodSucceeded || pod.Status.Phase == api.PodFailed {
		return Result{}, event{}, false
	}
	deadline := api.NewTime(time.Unix(0, unixNano).Add(time.Duration(grace) * time.Second))
	if cur := pod.DeletionTimestamp; cur != nil && !deadline.Time.Before(cur.Time) {
		return Result{Object: pod}, event{}, true // already going, no later than this asks
	}
	next := shallowCopy(pod).(*api.Pod)
	next.ObjectMeta = pod.ObjectMeta
	next.DeletionTimestamp = deadline
	next.DeletionGracePeriodSeconds = &grace
	next.ResourceVersion = rv
	f.put(api.KindPod, pod.Namespace, pod.Name, next)
	return Result{Object: next}, event{typ: Modified, obj: next, old: pod}, true
}

// allocate assigns what a new or changed object needs from the address
// plan (old is the stored version on update).
func (f *FSM) allocate(k Key, o, old api.Object) error {
	switch o := o.(type) {
	case *api.Service:
		oldSvc, _ := old.(*api.Service)
		return f.allocateService(k, o, oldSvc)
	case *api.Node:
		oldNode, _ := old.(*api.Node)
		return f.allocateNode(o, oldNode)
	}
	return nil
}

// bind sets a pending pod's node, after checking (inside the log, so two
// schedulers or two leaders racing cannot overcommit) that the pod is
// still the version the scheduler saw, is unbound, and that the node
// exists and has room for it.
func (f *FSM) bind(index uint64, rv string, ts *api.Time, r record, what string) (Result, event) {
	node := string(r.Object)
	cur := f.get(api.KindPod, r.Namespace, r.Name)
	if cur == nil {
		return Result{Err: fmt.Errorf("%w: %s not found", ErrNotFound, what)}, event{}
	}
	if err := checkPre(cur, r, what); err != nil {
		return Result{Err: err}, event{}
	}
	pod := cur.(*api.Pod)
	if pod.Spec.NodeName == node {
		return Result{Object: cur}, event{}
	}
	if pod.Spec.NodeName != "" {
		return Result{Err: fmt.Errorf("%w: %s is already bound to node %q", ErrConflict, what, pod.Spec.NodeName)}, event{}
	}
	if pod.GetObjectMeta().DeletionTimestamp != nil {
		return Result{Err: fmt.Errorf("%w: %s is being deleted", ErrConflict, what)}, event{}
	}
	n, _ := f.get(api.KindNode, "", node).(*api.Node)
	if n == nil {
		return Result{Err: fmt.Errorf("%w: node %q not found", ErrNotFound, node)}, event{}
	}
	want, used := podRequests(pod), f.alloc.usage[node]
	alloc := n.Status.Allocatable
	for _, c := range []struct {
		name      api.ResourceName
		need, has int64
	}{
		{api.ResourceCPU, want.CPUMilli, used.CPUMilli},
		{api.ResourceMemory, want.MemoryBytes, used.MemoryBytes},
		{api.ResourcePods, want.Pods, used.Pods},
	} {
		q, ok := alloc[c.name]
		if !ok {
			continue // not reported: not limited
		}
		limit := q.Value()
		if c.name == api.ResourceCPU {
			limit = q.MilliValue()
		}
		if c.has+c.need > limit {
			return Result{Err: fmt.Errorf("%w: node %q has insufficient %s for %s (allocatable %d, requested by bound pods %d, this pod %d)",
				ErrConflict, node, c.name, what, limit, c.has, c.need)}, event{}
		}
	}
	next := shallowCopy(cur).(*api.Pod)
	next.ObjectMeta = pod.ObjectMeta
	next.Spec.NodeName = node
	next.Status.Conditions = setCondition(pod.Status.Conditions, api.PodCondition{
		Type: api.PodScheduled, Status: api.ConditionTrue, LastTransitionTime: ts})
	next.Generation++
	next.ResourceVersion = rv
	f.put(api.KindPod, r.Namespace, r.Name, next)
	return Result{Object: next}, event{typ: Modified, obj: next, old: cur}
}

func setCondition(conds []api.PodCondition, c api.PodCondition) []api.PodCondition {
	out := make([]api.PodCondition, 0, len(conds)+1)
	for _, x := range conds {
		if x.Type != c.Type {
			out = append(out, x)
		}
	}
	return append(out, c)
}

// shallowCopy copies the top-level struct; nested maps and slices stay
// shared, which is safe because stored objects are never mutated.
func shallowCopy(o api.Object) api.Object {
	v := reflect.ValueOf(o).Elem()
	c := reflect.New(v.Type())
	c.Elem().Set(v)
	return c.Interface().(api.Object)
}

// equalObjects compares two objects ignoring their resourceVersion.
func equalObjects(a, b api.Object) bool {
	am, bm := *a.GetObjectMeta(), *b.GetObjectMeta()
	am.ResourceVersion, bm.ResourceVersion = "", ""
	if !reflect.DeepEqual(am, bm) {
		return false
	}
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		switch t.Field(i).Name {
		case "TypeMeta", "ObjectMeta":
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// Index returns the last applied entry's index.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// waitIndex blocks until the FSM has applied idx or the deadline passes.
func (f *FSM) waitIndex(idx uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, f.applied.Broadcast)
	defer stop.Stop()
	f.mu.RLock()
	defer f.mu.RUnlock()
	for f.index < idx {
		if !time.Now().Before(deadline) {
			return false
		}
		f.applied.Wait()
	}
	return true
}

// GetSystem returns one system record.
func (f *FSM) GetSystem(t SystemTable, key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.system[t][key]
	return v, ok
}

// ListSystem returns every record of a system table (values are shared:
// do not modify them).
func (f *FSM) ListSystem(t SystemTable) map[string][]byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string][]byte, len(f.system[t]))
	for k, v := range f.system[t] {
		out[k] = v
	}
	return out
}

// Members returns the replicated member records.
func (f *FSM) Members() []Member {
	recs := f.ListSystem(TableMembers)
	out := make([]Member, 0, len(recs))
	for _, v := range recs {
		var m Member
		if json.Unmarshal(v, &m) == nil {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Counts returns the number of stored objects per kind.
func (f *FSM) Counts() map[api.Kind]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[api.Kind]int{}
	for k, byNS := range f.objects {
		for _, byName := range byNS {
			out[k] += len(byName)
		}
	}
	return out
}
