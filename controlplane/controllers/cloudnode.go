package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

// CloudNode is Kubernetes' cloud node lifecycle controller, with the
// initialisation half of its cloud node controller: it deletes the nodes
// whose machines the provider says are gone, and gives each node its
// provider ID and zone/region labels the first time it sees the node without
// a provider ID. Without provider Instances it does nothing.
//
// Only nodes that are not Ready are asked about, as in Kubernetes: a node
// whose agent is heartbeating runs on a machine that exists, whatever a
// stale inventory says. A machine that vanishes goes silent, NodeLifecycle
// marks its node Ready=Unknown after its grace period, and the next pass
// here deletes the node.
type CloudNode struct {
	Store Store
	Log   *slog.Logger
	Cloud cloudprovider.Interface
	// Period is how often every node is checked (default 5s); node events
	// check the node at once.
	Period time.Duration
	// CallTimeout bounds each call to the provider (default 10s).
	CallTimeout time.Duration
}

var _ Controller = (*CloudNode)(nil)

// Name implements Controller.
func (c *CloudNode) Name() string { return "cloud-node" }

func (c *CloudNode) defaults() {
	if c.Period == 0 {
		c.Period = 5 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
}

// Run checks nodes until ctx ends.
func (c *CloudNode) Run(ctx context.Context) error {
	c.defaults()
	inst, ok := c.Cloud.Instances()
	if !ok {
		<-ctx.Done()
		return nil
	}
	nodes, _, w, err := c.Store.ListAndWatch(api.KindNode, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer w.Stop()
	q := NewQueue[store.Key]()
	for _, n := range nodes {
		q.Add(store.KeyOf(n))
	}
	defer work(ctx, 1, q, c.Log, func(ctx context.Context, k store.Key) error { return c.syncKey(ctx, inst, k) })()
	tick := time.NewTicker(c.Period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			all, _, err := c.Store.List(api.KindNode, store.ListOptions{})
			if err != nil {
				return fmt.Errorf("list nodes: %w", err)
			}
			for _, n := range all {
				q.Add(store.KeyOf(n))
			}
		case e, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("node watch ended: %w", w.Err())
			}
			if e.Type != store.Deleted {
				q.Add(store.KeyOf(e.Object))
			}
		}
	}
}

// Check makes one pass over every node, as a tick of Run does; a node
// whose check fails does not stop the others.
func (c *CloudNode) Check(ctx context.Context) error {
	c.defaults()
	inst, ok := c.Cloud.Instances()
	if !ok {
		return nil
	}
	nodes, _, err := c.Store.List(api.KindNode, store.ListOptions{})
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range nodes {
		errs = append(errs, c.sync(ctx, inst, o.(*api.Node)))
	}
	return errors.Join(errs...)
}

func (c *CloudNode) syncKey(ctx context.Context, inst cloudprovider.Instances, k store.Key) error {
	o, err := c.Store.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.sync(ctx, inst, o.(*api.Node))
}

// sync deletes n if its machine is gone, else initialises it. The node is
// the store's copy: it is copied before any change.
func (c *CloudNode) sync(ctx context.Context, inst cloudprovider.Instances, n *api.Node) error {
	if n.DeletionTimestamp != nil {
		return nil
	}
	if !nodeReadyTrue(n) {
		exists, err := c.instanceExists(ctx, inst, n)
		if err != nil {
			// "Don't know" is never a reason to delete.
			return fmt.Errorf("node %s: instance exists: %w", n.Name, err)
		}
		if !exists {
			// The UID precondition keeps a node re-registered under the
			// same name since the read.
			_, err := c.Store.Delete(ctx, store.KeyOf(n), store.Preconditions{UID: n.UID})
			if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("delete node %s: %w", n.Name, err)
			}
			if err == nil {
				c.Log.Info("deleted node: its instance no longer exists", "node", n.Name)
			}
			return nil
		}
	}
	if n.Spec.ProviderID != "" {
		return nil
	}
	return c.initialise(ctx, inst, n)
}

func (c *CloudNode) instanceExists(ctx context.Context, inst cloudprovider.Instances, n *api.Node) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
	defer cancel()
	return inst.InstanceExists(cctx, n)
}

// initialise writes the provider ID and, when the provider knows them, the
// zone and region labels. The write carries n's resourceVersion: a node
// changed meanwhile is a conflict, and the queue retries it from a fresh
// read.
func (c *CloudNode) initialise(ctx context.Context, inst cloudprovider.Instances, n *api.Node) error {
	cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
	md, err := inst.InstanceMetadata(cctx, n)
	cancel()
	if errors.Is(err, cloudprovider.ErrNotFound) {
		return nil // InstanceExists decides about missing machines
	}
	if err != nil {
		return fmt.Errorf("node %s: instance metadata: %w", n.Name, err)
	}
	next := api.DeepCopy(n)
	next.Spec.ProviderID = md.ProviderID
	for _, l := range [...]struct{ key, value string }{
		{cloudprovider.LabelTopologyZone, md.Zone},
		{cloudprovider.LabelTopologyRegion, md.Region},
	} {
		if l.value == "" {
			continue
		}
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		next.Labels[l.key] = l.value
	}
	if next.Spec.ProviderID == "" && maps.Equal(next.Labels, n.Labels) {
		return nil // the provider has nothing to add
	}
	// The store takes what it is given: check what the API server would,
	// since the labels come from the provider.
	if errs := api.ValidateUpdate(next, n); errs != nil {
		return fmt.Errorf("initialise node %s: %w", n.Name, errs)
	}
	if _, err := c.Store.Update(ctx, next); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("initialise node %s: %w", n.Name, err)
	}
	c.Log.Info("initialised node", "node", n.Name, "providerID", md.ProviderID, "zone", md.Zone, "region", md.Region)
	return nil
}

// nodeReadyTrue reports a Ready=True condition.
func nodeReadyTrue(n *api.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == api.NodeReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}
