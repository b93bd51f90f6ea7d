package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

// ServiceLB gives LoadBalancer services an ingress address from the cloud
// provider (status.loadBalancer.ingress) and releases it when the service
// goes or changes type. Without a load-balancer provider the services stay
// pending, as in Kubernetes.
type ServiceLB struct {
	Store       Store
	Log         *slog.Logger
	Cloud       cloudprovider.Interface
	ClusterName string
	// Resync is how often services still waiting for an address are
	// retried (default 5s).
	Resync time.Duration
}

// Name implements Controller.
func (c *ServiceLB) Name() string { return "service-lb" }

// Run reconciles until ctx ends.
func (c *ServiceLB) Run(ctx context.Context) error {
	lb, ok := c.Cloud.LoadBalancer()
	if !ok {
		<-ctx.Done()
		return nil
	}
	svcs, _, w, err := c.Store.ListAndWatch(api.KindService, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	defer w.Stop()
	// A new leader learns what earlier leaders allocated before it gives
	// out anything: no address is handed out twice.
	if r, ok := lb.(cloudprovider.Restorer); ok {
		var all []*api.Service
		for _, o := range svcs {
			all = append(all, o.(*api.Service))
		}
		if err := r.Restore(all); err != nil {
			c.Log.Warn("restore load balancer allocations", "err", err)
		}
	}
	for _, o := range svcs {
		c.sync(ctx, lb, o.(*api.Service), false)
	}
	if c.Resync == 0 {
		c.Resync = 5 * time.Second
	}
	tick := time.NewTicker(c.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			pending, _, _ := c.Store.List(api.KindService, store.ListOptions{})
			for _, o := range pending {
				if s := o.(*api.Service); s.Spec.Type == api.ServiceTypeLoadBalancer && len(s.Status.LoadBalancer.Ingress) == 0 {
					c.sync(ctx, lb, s, false)
				}
			}
		case e, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("service watch ended: %w", w.Err())
			}
			c.sync(ctx, lb, e.Object.(*api.Service), e.Type == store.Deleted)
		}
	}
}

func (c *ServiceLB) sync(ctx context.Context, lb cloudprovider.LoadBalancer, svc *api.Service, deleted bool) {
	if deleted || svc.Spec.Type != api.ServiceTypeLoadBalancer {
		if len(svc.Status.LoadBalancer.Ingress) > 0 || deleted {
			if err := lb.EnsureLoadBalancerDeleted(ctx, c.ClusterName, svc); err != nil && !errors.Is(err, cloudprovider.ErrNotFound) {
				c.Log.Warn("release load balancer", "service", svc.Namespace+"/"+svc.Name, "err", err)
			}
			if !deleted {
				c.writeStatus(ctx, svc, api.LoadBalancerStatus{})
			}
		}
		return
	}
	nodes, _, _ := c.Store.List(api.KindNode, store.ListOptions{})
	var ns []*api.Node
	for _, n := range nodes {
		ns = append(ns, n.(*api.Node))
	}
	st, err := lb.EnsureLoadBalancer(ctx, c.ClusterName, svc, ns)
	if err != nil {
		c.Log.Warn("ensure load balancer", "service", svc.Namespace+"/"+svc.Name, "err", err)
		return
	}
	c.writeStatus(ctx, svc, *st)
}

func (c *ServiceLB) writeStatus(ctx context.Context, svc *api.Service, st api.LoadBalancerStatus) {
	if reflect.DeepEqual(svc.Status.LoadBalancer, st) {
		return
	}
	next := api.DeepCopy(svc)
	next.ResourceVersion = "" // status only: no need to match
	next.Status.LoadBalancer = st
	if _, err := c.Store.UpdateStatus(ctx, next); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.Log.Warn("write load balancer status", "service", svc.Namespace+"/"+svc.Name, "err", err)
	}
}
