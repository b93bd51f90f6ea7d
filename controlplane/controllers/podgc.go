package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// PodGC removes pods no node will ever finish, as Kubernetes' pod garbage
// collector does:
//   - pods bound to nodes that no longer exist (deleted by hand or by the
//     cloud node controller): their controllers replace them on live nodes;
//   - pods deleted gracefully whose grace period is over while their node
//     is not Ready (unreachable): their node cannot confirm the stop, and
//     an agent cut off for longer than the grace period has stopped its
//     pods itself. Their replacements already run: this only clears the
//     Terminating objects.
//
// It reacts to node deletions at once and sweeps every Interval.
type PodGC struct {
	Store    Store
	Log      *slog.Logger
	Interval time.Duration    // default 30s
	Now      func() time.Time // default time.Now
}

// Name implements Controller.
func (c *PodGC) Name() string { return "pod-gc" }

// Run collects until ctx ends.
func (c *PodGC) Run(ctx context.Context) error {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	_, _, w, err := c.Store.ListAndWatch(api.KindNode, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer w.Stop()
	if err := c.Sweep(ctx); err != nil {
		c.Log.Warn("pod garbage collection failed", "err", err)
	}
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("node watch ended: %w", w.Err())
			}
			if e.Type != store.Deleted {
				continue
			}
			name := e.Object.GetObjectMeta().Name
			pods, _, err := c.Store.List(api.KindPod, store.ListOptions{Fields: nodeField(name)})
			if err == nil {
				err = c.delete(ctx, name, pods)
			}
			if err != nil {
				c.Log.Warn("delete the pods of a deleted node", "node", name, "err", err)
			}
		case <-tick.C:
			if err := c.Sweep(ctx); err != nil {
				c.Log.Warn("pod garbage collection failed", "err", err)
			}
		}
	}
}

// Sweep deletes every bound pod whose node does not exist, and every pod
// past its deletion deadline on a node that is not Ready.
func (c *PodGC) Sweep(ctx context.Context) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	pods, _, err := c.Store.List(api.KindPod, store.ListOptions{})
	if err != nil {
		return err
	}
	byNode := map[string][]api.Object{}
	for _, o := range pods {
		if n := o.(*api.Pod).Spec.NodeName; n != "" {
			byNode[n] = append(byNode[n], o)
		}
	}
	var overdue []store.Op
	for node, ps := range byNode {
		o, err := c.Store.Get(store.Key{Kind: api.KindNode, Name: node})
		if err != nil {
			if err := c.delete(ctx, node, ps); err != nil {
				return err
			}
			continue
		}
		if nodeReadyTrue(o.(*api.Node)) {
			continue
		}
		for _, p := range ps {
			if dt := p.GetObjectMeta().DeletionTimestamp; dt != nil && now().After(dt.Time) {
				overdue = append(overdue, forceDeleteOp(p))
			}
		}
	}
	if len(overdue) > 0 {
		if err := applyOps(ctx, c.Store, overdue); err != nil {
			return err
		}
		c.Log.Info("removed pods past their grace period on nodes that are not Ready", "pods", len(overdue))
	}
	return nil
}

// delete deletes pods of a node that is gone, each guarded by its UID.
func (c *PodGC) delete(ctx context.Context, node string, pods []api.Object) error {
	if len(pods) == 0 {
		return nil
	}
	ops := make([]store.Op, len(pods))
	for i, p := range pods {
		ops[i] = forceDeleteOp(p)
	}
	if err := applyOps(ctx, c.Store, ops); err != nil {
		return err
	}
	c.Log.Info("deleted the pods of a node that no longer exists", "node", node, "pods", len(pods))
	return nil
}
