package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// GarbageCollector deletes objects whose owner (by ownerReferences uid) is
// gone: deleting a Deployment deletes its pods and ControllerRevisions. It
// reacts to deletions of owners at once and sweeps every Interval for
// orphans whose owner went while no leader was watching.
type GarbageCollector struct {
	Store    Store
	Log      *slog.Logger
	Interval time.Duration // default 30s
}

// ownerKinds are the kinds that own others today.
var ownerKinds = []api.Kind{api.KindDeployment, api.KindDaemonSet}

// dependentKinds are the kinds that have owners today.
var dependentKinds = []api.Kind{api.KindPod, api.KindControllerRevision}

// Name implements Controller.
func (c *GarbageCollector) Name() string { return "garbage-collector" }

// Run collects until ctx ends.
func (c *GarbageCollector) Run(ctx context.Context) error {
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	var watchers []store.Watcher
	for _, k := range ownerKinds {
		_, _, w, err := c.Store.ListAndWatch(k, store.ListOptions{})
		if err != nil {
			return fmt.Errorf("watch %s: %w", k, err)
		}
		defer w.Stop()
		watchers = append(watchers, w)
	}
	deleted := make(chan api.Object, 64)
	for _, w := range watchers {
		go func() {
			for e := range w.Events() {
				if e.Type == store.Deleted {
					select {
					case deleted <- e.Object:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	if err := c.sweep(ctx); err != nil {
		c.Log.Warn("garbage collection sweep", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-deleted:
			m := o.GetObjectMeta()
			if err := c.collect(ctx, m.Namespace); err != nil {
				c.Log.Warn("collect dependents", "owner", m.Namespace+"/"+m.Name, "err", err)
			}
		case <-tick.C:
			if err := c.sweep(ctx); err != nil {
				c.Log.Warn("garbage collection sweep", "err", err)
			}
		}
	}
}

// sweep deletes every dependent none of whose owners exists any more.
func (c *GarbageCollector) sweep(ctx context.Context) error { return c.collect(ctx, "") }

// collect deletes the dependents (in ns, or in all namespaces) all of whose
// owners are gone.
func (c *GarbageCollector) collect(ctx context.Context, ns string) error {
	var ops []store.Op
	for _, k := range dependentKinds {
		objs, _, err := c.Store.List(k, store.ListOptions{Namespace: ns})
		if err != nil {
			return err
		}
		for _, o := range objs {
			m := o.GetObjectMeta()
			if len(m.OwnerReferences) == 0 || m.DeletionTimestamp != nil {
				continue
			}
			orphan := true
			for _, r := range m.OwnerReferences {
				if !c.ownerGone(m.Namespace, r) {
					orphan = false
					break
				}
			}
			if orphan {
				ops = append(ops, store.Op{Type: store.OpDelete, Key: store.KeyOf(o), Preconditions: store.Preconditions{UID: m.UID}})
			}
		}
	}
	return applyOps(ctx, c.Store, ops)
}

// ownerGone reports whether the owner r of an object in ns is gone: no
// object of its kind and name with its uid exists (a new object of the same
// name is not the owner).
func (c *GarbageCollector) ownerGone(ns string, r api.OwnerReference) bool {
	info, ok := api.ByKind(api.Kind(r.Kind))
	if !ok {
		return false // an owner kind we do not know: keep the object
	}
	key := store.Key{Kind: info.Kind, Name: r.Name}
	if info.Namespaced {
		key.Namespace = ns
	}
	o, err := c.Store.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	return err == nil && o.GetObjectMeta().UID != r.UID
}
