package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// TaintNodeUnreachable is set (NoExecute) on a node whose agent went
// silent, as in Kubernetes.
const TaintNodeUnreachable = "node.kubernetes.io/unreachable"

// Liveness records node agents' heartbeats in memory on the leader: a
// heartbeat is not a Raft write, so thousands of nodes cost nothing in the
// log; only Ready transitions are replicated (NodeLifecycle).
type Liveness struct {
	mu   sync.Mutex
	seen map[string]time.Time
	now  func() time.Time
}

// NewLiveness returns an empty record; now defaults to time.Now.
func NewLiveness(now func() time.Time) *Liveness {
	if now == nil {
		now = time.Now
	}
	return &Liveness{seen: map[string]time.Time{}, now: now}
}

// Heartbeat records that node's agent is alive now.
func (l *Liveness) Heartbeat(node string) {
	l.mu.Lock()
	l.seen[node] = l.now()
	l.mu.Unlock()
}

// LastSeen is node's last heartbeat (zero if none since this server started).
func (l *Liveness) LastSeen(node string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[node]
}

// NodeLifecycle marks nodes whose agents went silent for longer than Grace
// Ready=Unknown with a NoExecute unreachable taint, evicts their pods that
// do not tolerate it (their controllers replace them elsewhere), and undoes
// the mark when heartbeats resume. A new leader gives every node a full
// grace period from the moment it took over, and a node that appears later
// gets one from the pass that first sees it (its agent may heartbeat just
// after creating it).
type NodeLifecycle struct {
	Store    Store
	Log      *slog.Logger
	Liveness *Liveness
	Grace    time.Duration    // default 10s
	Period   time.Duration    // how often to check; default 500ms
	Now      func() time.Time // default time.Now

	start time.Time
	// firstSeen is when a pass first saw each node (this term).
	firstSeen map[string]time.Time
}

// Name implements Controller.
func (c *NodeLifecycle) Name() string { return "node-lifecycle" }

func (c *NodeLifecycle) defaults() {
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.Period == 0 {
		c.Period = 500 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.start.IsZero() {
		c.start = c.Now()
	}
}

// Run checks every Period until ctx ends.
func (c *NodeLifecycle) Run(ctx context.Context) error {
	c.defaults()
	t := time.NewTicker(c.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.Check(ctx); err != nil && ctx.Err() == nil {
				c.Log.Warn("node lifecycle", "err", err)
			}
		}
	}
}

// Check makes one pass over the nodes.
func (c *NodeLifecycle) Check(ctx context.Context) error {
	c.defaults()
	nodes, _, err := c.Store.List(api.KindNode, store.ListOptions{})
	if err != nil {
		return err
	}
	now := c.Now()
	seen := make(map[string]time.Time, len(nodes))
	var errs []error
	for _, o := range nodes {
		n := o.(*api.Node)
		first, ok := c.firstSeen[n.Name]
		if !ok {
			first = now
		}
		seen[n.Name] = first
		last := c.Liveness.LastSeen(n.Name)
		if last.Before(c.start) {
			last = c.start
		}
		if last.Before(first) {
			last = first
		}
		silent := now.Sub(last) > c.Grace
		marked := hasTaint(n, TaintNodeUnreachable)
		switch {
		case silent && !marked:
			errs = append(errs, c.markUnreachable(ctx, n, now.Sub(last)))
		case silent:
			errs = append(errs, c.evict(ctx, n))
		case marked:
			errs = append(errs, c.markReachable(ctx, n))
		}
	}
	c.firstSeen = seen // forgets deleted nodes
	return errors.Join(errs...)
}

func hasTaint(n *api.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == api.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func (c *NodeLifecycle) markUnreachable(ctx context.Context, n *api.Node, silence time.Duration) error {
	ts := api.NewTime(c.Now())
	spec := api.DeepCopy(n)
	spec.Spec.Taints = append(spec.Spec.Taints, api.Taint{Key: TaintNodeUnreachable, Effect: api.TaintEffectNoExecute, TimeAdded: ts})
	status := api.DeepCopy(n)
	status.ResourceVersion = "" // the spec write above changes it; the status write goes after it
	status.Status.Conditions = setNodeCondition(n.Status.Conditions, api.NodeCondition{Type: api.NodeReady, Status: api.ConditionUnknown,
		Reason: "NodeStatusUnknown", Message: fmt.Sprintf("the node agent stopped posting heartbeats %s ago", silence.Round(time.Second)), LastTransitionTime: ts})
	res, err := c.Store.Batch(ctx, []store.Op{{Type: store.OpUpdate, Object: spec}, {Type: store.OpUpdateStatus, Object: status}})
	if err != nil {
		return err
	}
	if err := errors.Join(res[0].Err, res[1].Err); err != nil {
		return fmt.Errorf("mark node %s unreachable: %w", n.Name, err)
	}
	c.Log.Info("node unreachable", "node", n.Name, "silentFor", silence)
	return nil
}

func (c *NodeLifecycle) markReachable(ctx context.Context, n *api.Node) error {
	spec := api.DeepCopy(n)
	spec.Spec.Taints = nil
	for _, t := range n.Spec.Taints {
		if !(t.Key == TaintNodeUnreachable && t.Effect == api.TaintEffectNoExecute) {
			spec.Spec.Taints = append(spec.Spec.Taints, t)
		}
	}
	status := api.DeepCopy(n)
	status.ResourceVersion = ""
	status.Status.Conditions = setNodeCondition(n.Status.Conditions, api.NodeCondition{Type: api.NodeReady, Status: api.ConditionTrue,
		Reason: "NodeHeartbeatsResumed", Message: "the node agent is posting heartbeats again", LastTransitionTime: api.NewTime(c.Now())})
	res, err := c.Store.Batch(ctx, []store.Op{{Type: store.OpUpdate, Object: spec}, {Type: store.OpUpdateStatus, Object: status}})
	if err != nil {
		return err
	}
	if err := errors.Join(res[0].Err, res[1].Err); err != nil {
		return fmt.Errorf("mark node %s reachable: %w", n.Name, err)
	}
	c.Log.Info("node reachable again", "node", n.Name)
	return nil
}

// evict deletes the pods bound to n that do not tolerate the unreachable
// taint.
func (c *NodeLifecycle) evict(ctx context.Context, n *api.Node) error {
	pods, _, err := c.Store.List(api.KindPod, store.ListOptions{Fields: nodeField(n.Name)})
	if err != nil {
		return err
	}
	var ops []store.Op
	for _, o := range pods {
		p := o.(*api.Pod)
		if p.DeletionTimestamp != nil || tolerates(p, TaintNodeUnreachable) {
			continue
		}
		ops = append(ops, deleteOp(p))
	}
	if len(ops) == 0 {
		return nil
	}
	res, err := c.Store.Batch(ctx, ops)
	if err != nil {
		return err
	}
	evicted := 0
	for _, r := range res {
		if r.Err == nil {
			evicted++
		}
	}
	c.Log.Info("evicted pods from unreachable node", "node", n.Name, "pods", evicted)
	return nil
}

// deleteOp deletes o if it is still the same object (its uid); a pod
// running on a node gets its grace period (its node stops it, then it
// goes).
func deleteOp(o api.Object) store.Op {
	return store.Op{Type: store.OpDelete, Key: store.KeyOf(o), Preconditions: store.Preconditions{UID: o.GetObjectMeta().UID}}
}

// forceDeleteOp deletes o at once, without waiting for a node: for pods
// whose node is gone or has been silent past their grace period.
func forceDeleteOp(o api.Object) store.Op {
	op := deleteOp(o)
	op.Grace = new(int64)
	return op
}

func nodeField(node string) api.FieldSelector {
	fs, _ := api.ParseFieldSelector("spec.nodeName=" + node)
	return fs
}

// tolerates reports a toleration of key's NoExecute taint.
func tolerates(p *api.Pod, key string) bool {
	for _, t := range p.Spec.Tolerations {
		if (t.Key == key || (t.Key == "" && t.Operator == api.TolerationOpExists)) &&
			(t.Effect == "" || t.Effect == api.TaintEffectNoExecute) {
			return true
		}
	}
	return false
}

func setNodeCondition(conds []api.NodeCondition, c api.NodeCondition) []api.NodeCondition {
	out := make([]api.NodeCondition, 0, len(conds)+1)
	for _, x := range conds {
		if x.Type != c.Type {
			out = append(out, x)
		}
	}
	return append(out, c)
}
