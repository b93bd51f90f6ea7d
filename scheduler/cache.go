package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/skiffhq/skiff/api"
)

// ErrAlreadyBound: AssumePod for a pod the cache already knows bound.
var ErrAlreadyBound = errors.New("pod already bound")

// Cache is the scheduler's view of nodes and of the pods bound to them,
// fed from store watches (Add/Update/Delete of nodes and pods) plus the
// bindings the scheduler has committed but not yet seen come back
// (AssumePod). It hands out Snapshots cheaply: a node's NodeInfo is copied
// once after it changes and then shared by every snapshot until it changes
// again, so a snapshot of 5,000 nodes costs 5,000 pointer copies plus the
// nodes touched since the last one.
//
// Cache is safe for concurrent use.
type Cache struct {
	mu     sync.Mutex
	nodes  map[string]*cacheNode
	pods   map[PodKey]*cachedPod
	sorted []string // names of nodes with a node object; nil: stale
	// gen counts changes; listGen counts changes of the set of nodes.
	gen     uint64
	listGen uint64
}

type cacheNode struct {
	info   *NodeInfo // owned by the cache
	frozen *NodeInfo // copy shared with snapshots; nil once info changes
	gen    uint64    // Cache.gen of the last change
}

type cachedPod struct {
	info    *PodInfo
	assumed bool
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{nodes: make(map[string]*cacheNode), pods: make(map[PodKey]*cachedPod)}
}

func (c *Cache) node(name string) *cacheNode {
	cn := c.nodes[name]
	if cn == nil {
		cn = &cacheNode{info: &NodeInfo{}}
		c.nodes[name] = cn
	}
	c.touch(cn)
	return cn
}

// touch records a change of cn.
func (c *Cache) touch(cn *cacheNode) {
	c.gen++
	cn.gen = c.gen
	cn.frozen = nil
}

// staleList records that the set of nodes changed.
func (c *Cache) staleList() {
	c.sorted = nil
	c.listGen++
}

// AddNode adds or replaces a node.
func (c *Cache) AddNode(node *api.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn := c.node(node.Name)
	if cn.info.Node == nil {
		c.staleList()
	}
	cn.info.SetNode(node)
}

// UpdateNode replaces a node (same as AddNode).
func (c *Cache) UpdateNode(node *api.Node) { c.AddNode(node) }

// DeleteNode removes the named node; its pods stay accounted (out of
// every snapshot) until they are deleted, as their deletion events follow.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, ok := c.nodes[name]
	if !ok {
		return
	}
	c.staleList()
	if len(cn.info.Pods) == 0 {
		delete(c.nodes, name)
		return
	}
	c.touch(cn)
	cn.info.SetNode(nil)
}

// AddPod records a pod event. Only pods bound to a node and not finished
// take room; any other state removes the pod from the cache, except that
// a stale unbound copy of an assumed pod leaves the assumption alone.
func (c *Cache) AddPod(pod *api.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := KeyOf(pod)
	old := c.pods[key]
	if pod.Spec.NodeName == "" && old != nil && old.assumed {
		return
	}
	if old != nil {
		c.removeLocked(key, old)
	}
	if pod.Spec.NodeName == "" || podTerminated(pod) {
		return
	}
	pi := NewPodInfo(pod)
	c.node(pi.NodeName).info.AddPod(pi)
	c.pods[key] = &cachedPod{info: pi}
}

// UpdatePod records a pod event (same as AddPod).
func (c *Cache) UpdatePod(pod *api.Pod) { c.AddPod(pod) }

// DeletePod removes a pod.
func (c *Cache) DeletePod(pod *api.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := KeyOf(pod)
	if old := c.pods[key]; old != nil {
		c.removeLocked(key, old)
	}
}

func (c *Cache) removeLocked(key PodKey, cp *cachedPod) {
	delete(c.pods, key)
	cn := c.nodes[cp.info.NodeName]
	if cn == nil {
		return
	}
	c.touch(cn)
	cn.info.RemovePod(key)
	if cn.info.Node == nil && len(cn.info.Pods) == 0 {
		delete(c.nodes, cp.info.NodeName)
	}
}

// AssumePod accounts for pod on nodeName before the store confirms the
// binding, so the next batch's snapshot sees it. The pod's own watch event
// (bound to that node) later replaces the assumption; ForgetPod drops it
// if the binding failed.
func (c *Cache) AssumePod(pod *api.Pod, nodeName string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assumeLocked(pod, nodeName)
}

// AssumePods assumes each placed result (NodeName set) under one lock, as
// AssumePod does; errs[i] is the error of results[i] (nil if assumed or
// not placed).
func (c *Cache) AssumePods(results []Result) (errs []error) {
	errs = make([]error, len(results))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range results {
		if r.NodeName != "" {
			errs[i] = c.assumeLocked(r.Pod, r.NodeName)
		}
	}
	return errs
}

func (c *Cache) assumeLocked(pod *api.Pod, nodeName string) error {
	key := KeyOf(pod)
	if old := c.pods[key]; old != nil {
		if !old.assumed {
			return fmt.Errorf("assume %s on %s: %w", key, nodeName, ErrAlreadyBound)
		}
		c.removeLocked(key, old)
	}
	pi := NewPodInfo(pod)
	pi.NodeName = nodeName
	c.node(nodeName).info.AddPod(pi)
	c.pods[key] = &cachedPod{info: pi, assumed: true}
	return nil
}

// ForgetPod drops an assumption (the binding was rejected); a pod the
// store reported bound is left alone.
func (c *Cache) ForgetPod(pod *api.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := KeyOf(pod)
	if old := c.pods[key]; old != nil && old.assumed {
		c.removeLocked(key, old)
	}
}

// Snapshot returns a new snapshot of the nodes that have a node object.
func (c *Cache) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := newSnapshot(c.frozenListLocked())
	snap.gen, snap.listGen = c.gen, c.listGen
	return snap
}

func (c *Cache) frozenListLocked() []*NodeInfo {
	if c.sorted == nil {
		c.sorted = make([]string, 0, len(c.nodes))
		for name, cn := range c.nodes {
			if cn.info.Node != nil {
				c.sorted = append(c.sorted, name)
			}
		}
		sort.Strings(c.sorted)
	}
	infos := make([]*NodeInfo, len(c.sorted))
	for i, name := range c.sorted {
		infos[i] = c.frozenLocked(c.nodes[name])
	}
	return infos
}

func (c *Cache) frozenLocked(cn *cacheNode) *NodeInfo {
	if cn.frozen == nil {
		cn.frozen = cn.info.Clone()
	}
	return cn.frozen
}

// UpdateSnapshot brings snap (from Snapshot, possibly changed by Assume
// and Forget since) up to date with the cache, replacing only the nodes
// that changed and updating its affinity index incrementally instead of
// rebuilding it. Assumptions made in snap are dropped: the caller is
// expected to have passed the ones it keeps to AssumePod. This is the
// cheap path for a scheduling loop that reuses one snapshot per batch.
func (c *Cache) UpdateSnapshot(snap *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.listGen != c.listGen || snap.gen == 0 {
		infos := c.frozenListLocked()
		if snap.pods != nil {
			keep := make(map[*NodeInfo]bool, len(infos))
			for _, ni := range infos {
				keep[ni] = true
			}
			had := make(map[*NodeInfo]bool, len(snap.nodes))
			for _, ni := range snap.nodes {
				had[ni] = true
				if !keep[ni] {
					for _, p := range ni.Pods {
						snap.pods.remove(p, ni.labels)
					}
				}
			}
			for _, ni := range infos {
				if !had[ni] {
					for _, p := range ni.Pods {
						snap.pods.add(p, ni.labels)
					}
				}
			}
		}
		pods := snap.pods
		*snap = *newSnapshot(infos)
		snap.pods = pods
	} else {
		for i, old := range snap.nodes {
			cn := c.nodes[old.Name()]
			if cn.gen <= snap.gen && !snap.owned[i] {
				continue
			}
			fresh := c.frozenLocked(cn)
			if snap.pods != nil {
				for _, p := range old.Pods {
					snap.pods.remove(p, old.labels)
				}
				for _, p := range fresh.Pods {
					snap.pods.add(p, fresh.labels)
				}
			}
			snap.nodes[i] = fresh
			snap.owned[i] = false
		}
		snap.assumed = nil
		snap.domains = nil
		snap.byNodeLabel = nil
		snap.antiPods = -1
	}
	snap.gen, snap.listGen = c.gen, c.listGen
}

// Counts returns the number of nodes (with a node object) and pods held.
func (c *Cache) Counts() (nodes, pods int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cn := range c.nodes {
		if cn.info.Node != nil {
			nodes++
		}
	}
	return nodes, len(c.pods)
}
