package store

import "github.com/skiffhq/skiff/api"

// refIndex maps a value (an owner's uid, a node's name) to the keys of the
// objects that carry it, so that "the pods of this Deployment" and "the
// pods on this node" are found without scanning every pod: at 50,000 pods
// a controller's scan-and-sort per sync was most of the leader's CPU.
type refIndex map[string]map[Key]struct{}

func (x refIndex) add(v string, k Key) {
	set := x[v]
	if set == nil {
		set = map[Key]struct{}{}
		x[v] = set
	}
	set[k] = struct{}{}
}

func (x refIndex) remove(v string, k Key) {
	set := x[v]
	delete(set, k)
	if len(set) == 0 {
		delete(x, v)
	}
}

// indexes are the FSM's secondary indexes (kept under the FSM lock).
type indexes struct {
	owner refIndex // ownerReferences[*].uid -> objects
	node  refIndex // pod spec.nodeName (bound pods) -> pods
}

func newIndexes() indexes { return indexes{owner: refIndex{}, node: refIndex{}} }

// update moves k's entries from old's values to o's (either may be nil).
func (x indexes) update(k Key, old, o api.Object) {
	if old != nil {
		for _, ref := range old.GetObjectMeta().OwnerReferences {
			x.owner.remove(string(ref.UID), k)
		}
		if n := podNode(old); n != "" {
			x.node.remove(n, k)
		}
	}
	if o != nil {
		for _, ref := range o.GetObjectMeta().OwnerReferences {
			x.owner.add(string(ref.UID), k)
		}
		if n := podNode(o); n != "" {
			x.node.add(n, k)
		}
	}
}

func podNode(o api.Object) string {
	if p, ok := o.(*api.Pod); ok {
		return p.Spec.NodeName
	}
	return ""
}

// candidates returns the keys an index narrows a list to, and false when
// no index applies (scan everything).
func (x indexes) candidates(kind api.Kind, opts ListOptions) (map[Key]struct{}, bool) {
	if opts.OwnerUID != "" {
		return x.owner[string(opts.OwnerUID)], true
	}
	if kind == api.KindPod && opts.Fields != nil {
		if n, ok := api.ExactMatch(opts.Fields, api.FieldPodNodeName); ok && n != "" {
			return x.node[n], true
		}
	}
	return nil, false
}
