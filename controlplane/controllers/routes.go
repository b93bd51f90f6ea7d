package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Node condition reasons the route controller writes, as in Kubernetes.
const (
	ReasonRouteCreated   = "RouteCreated"
	ReasonNoRouteCreated = "NoRouteCreated"
)

// Routes is Kubernetes' route controller: it keeps the provider's routes
// equal to one route per node pod CIDR (target the node, destination the
// CIDR), creating the missing ones and deleting those whose node is gone or
// no longer holds the CIDR, and reports each node's routes in its
// NetworkUnavailable condition (False, RouteCreated once they all exist;
// True, NoRouteCreated when one could not be created). Every pass compares
// the whole list: a route lost while no leader ran is recreated, one left
// behind is deleted. Without provider Routes it does nothing.
type Routes struct {
	Store       Store
	Log         *slog.Logger
	Cloud       cloudprovider.Interface
	ClusterName string
	// Resync is how often the routes are compared even without node
	// changes (default 10s). Adding or deleting a node, or a change of its
	// pod CIDRs, starts a pass at once.
	Resync time.Duration
	// CallTimeout bounds each call to the provider (default 10s).
	CallTimeout time.Duration
	// Now stamps condition transitions (default time.Now).
	Now func() time.Time
}

var _ Controller = (*Routes)(nil)

// Name implements Controller.
func (c *Routes) Name() string { return "routes" }

func (c *Routes) defaults() {
	if c.Resync == 0 {
		c.Resync = 10 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Run reconciles until ctx ends.
func (c *Routes) Run(ctx context.Context) error {
	c.defaults()
	rt, ok := c.Cloud.Routes()
	if !ok {
		<-ctx.Done()
		return nil
	}
	nodes, _, w, err := c.Store.ListAndWatch(api.KindNode, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	defer w.Stop()
	// Watch events carry only the new object: remember each node's pod
	// CIDRs to tell a CIDR change from the status writes of agents and
	// controllers, which need no pass.
	cidrs := map[string]string{}
	for _, n := range nodes {
		cidrs[n.GetObjectMeta().Name] = strings.Join(podCIDRsOf(n.(*api.Node)), ",")
	}
	// One key for a whole pass: the queue merges a burst of node events
	// into one pass and backs off after a failed one.
	q := NewQueue[struct{}]()
	q.Add(struct{}{})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			k, ok := q.Get(wctx)
			if !ok {
				return
			}
			err := c.reconcile(wctx, rt)
			if err != nil && wctx.Err() == nil {
				c.Log.Warn("route sync failed; will retry", "err", err)
			}
			q.Done(k, err)
		}
	}()
	defer func() { cancel(); <-done }()
	tick := time.NewTicker(c.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			q.Add(struct{}{})
		case e, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("node watch ended: %w", w.Err())
			}
			name := e.Object.GetObjectMeta().Name
			if e.Type == store.Deleted {
				delete(cidrs, name)
				q.Add(struct{}{})
				continue
			}
			now := strings.Join(podCIDRsOf(e.Object.(*api.Node)), ",")
			if before, seen := cidrs[name]; !seen || before != now {
				cidrs[name] = now
				q.Add(struct{}{})
			}
		}
	}
}

// Sync makes one pass, as Run does on each change and tick.
func (c *Routes) Sync(ctx context.Context) error {
	c.defaults()
	rt, ok := c.Cloud.Routes()
	if !ok {
		return nil
	}
	return c.reconcile(ctx, rt)
}

// routeKey is what makes two routes the same route; names are the
// provider's business.
type routeKey struct {
	node cloudprovider.NodeName
	cidr netip.Prefix
}

func (c *Routes) reconcile(ctx context.Context, rt cloudprovider.Routes) error {
	objs, _, err := c.Store.List(api.KindNode, store.ListOptions{})
	if err != nil {
		return err
	}
	nodes := make([]*api.Node, len(objs))
	for i, o := range objs {
		nodes[i] = o.(*api.Node)
	}
	want, bad := desiredRoutes(nodes)
	for _, err := range bad {
		c.Log.Warn("node pod CIDR gets no route", "err", err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
	routes, err := rt.ListRoutes(cctx, c.ClusterName)
	cancel()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	wanted := map[routeKey]bool{}
	for _, r := range want {
		wanted[routeKey{r.TargetNode, r.DestinationCIDR}] = true
	}
	var errs []error
	have := map[routeKey]bool{}
	// Stale routes go first: the CIDR of a deleted node may be another
	// node's now, and its route would overlap the stale one.
	for _, r := range routes {
		k := routeKey{r.TargetNode, r.DestinationCIDR}
		if wanted[k] {
			have[k] = true
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
		err := rt.DeleteRoute(cctx, c.ClusterName, r)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete route %s (%s via node %s): %w", r.Name, r.DestinationCIDR, r.TargetNode, err))
			continue
		}
		c.Log.Info("deleted route", "route", r.Name, "node", r.TargetNode, "cidr", r.DestinationCIDR)
	}
	failed := map[cloudprovider.NodeName]bool{}
	for _, r := range want {
		k := routeKey{r.TargetNode, r.DestinationCIDR}
		if have[k] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
		err := rt.CreateRoute(cctx, c.ClusterName, string(r.TargetNode), &r)
		cancel()
		if err != nil {
			failed[r.TargetNode] = true
			errs = append(errs, fmt.Errorf("create route to %s via node %s: %w", r.DestinationCIDR, r.TargetNode, err))
			continue
		}
		have[k] = true
		c.Log.Info("created route", "node", r.TargetNode, "cidr", r.DestinationCIDR)
	}
	errs = append(errs, applyOps(ctx, c.Store, c.conditionOps(nodes, failed)))
	return errors.Join(errs...)
}

// conditionOps sets NetworkUnavailable on the nodes with a pod CIDR whose
// condition says otherwise. The writes carry the node's resourceVersion:
// one that lost a race is dropped (applyOps) and made on the next pass.
func (c *Routes) conditionOps(nodes []*api.Node, failed map[cloudprovider.NodeName]bool) []store.Op {
	var ops []store.Op
	for _, n := range nodes {
		if len(podCIDRsOf(n)) == 0 {
			continue
		}
		want := api.NodeCondition{Type: api.NodeNetworkUnavailable, Status: api.ConditionFalse,
			Reason: ReasonRouteCreated, Message: "the route controller created a route to the node's pod CIDRs"}
		if failed[cloudprovider.NodeName(n.Name)] {
			want = api.NodeCondition{Type: api.NodeNetworkUnavailable, Status: api.ConditionTrue,
				Reason: ReasonNoRouteCreated, Message: "the route controller failed to create a route to the node's pod CIDRs"}
		}
		i := slices.IndexFunc(n.Status.Conditions, func(x api.NodeCondition) bool { return x.Type == api.NodeNetworkUnavailable })
		if i >= 0 {
			cur := n.Status.Conditions[i]
			if cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
				continue
			}
			if cur.Status == want.Status {
				want.LastTransitionTime = cur.LastTransitionTime
			}
		}
		if want.LastTransitionTime == nil {
			want.LastTransitionTime = api.NewTime(c.Now())
		}
		next := api.DeepCopy(n)
		next.Status.Conditions = setNodeCondition(n.Status.Conditions, want)
		ops = append(ops, store.Op{Type: store.OpUpdateStatus, Object: next})
	}
	return ops
}

// desiredRoutes is one route per pod CIDR of each node, sorted by node then
// destination. CIDRs that do not parse get no route; they are returned as
// errors.
func desiredRoutes(nodes []*api.Node) ([]cloudprovider.Route, []error) {
	var out []cloudprovider.Route
	var errs []error
	for _, n := range nodes {
		for _, s := range podCIDRsOf(n) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s: pod CIDR %q: %w", n.Name, s, err))
				continue
			}
			out = append(out, cloudprovider.Route{TargetNode: cloudprovider.NodeName(n.Name), DestinationCIDR: p.Masked()})
		}
	}
	slices.SortFunc(out, func(a, b cloudprovider.Route) int {
		if c := strings.Compare(string(a.TargetNode), string(b.TargetNode)); c != 0 {
			return c
		}
		if c := a.DestinationCIDR.Addr().Compare(b.DestinationCIDR.Addr()); c != 0 {
			return c
		}
		return a.DestinationCIDR.Bits() - b.DestinationCIDR.Bits()
	})
	return slices.Compact(out), errs
}

// podCIDRsOf is spec.podCIDRs, or spec.podCIDR for a node that has only
// that.
func podCIDRsOf(n *api.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}
