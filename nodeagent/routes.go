package nodeagent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/network/routes"
)

// RouteSyncer programs this node's routes to the other nodes' pod CIDRs
// (network/routes.Routes does, with netlink).
type RouteSyncer interface {
	Sync(ctx context.Context, want []routes.Route) error
}

// routesResync is how often the routes are programmed again even without
// a node change: routes someone deleted by hand come back.
const routesResync = time.Minute

// nodesLoop keeps what the agent derives from the Nodes, from one
// list-and-watch, until ctx ends: a route to every other node's pod CIDR
// via its InternalIP (with cfg.Routes), and the other nodes' agent
// endpoints that the fence checks probe (with peers).
func (a *Agent) nodesLoop(ctx context.Context, peers *peerSet) {
	a.relistLoop(ctx, "node watch", func(ctx context.Context) error {
		for {
			err := a.nodesWatch(ctx, peers)
			if !errors.Is(err, errRelisted) {
				return err
			}
			a.log.Info("node watch fell behind; listing again")
		}
	})
}

// relistLoop runs a list-and-watch until ctx ends, listing again with
// back-off whenever the watch ends; a watch that lasted is no failure, so
// the back-off starts over after it.
func (a *Agent) relistLoop(ctx context.Context, what string, watch func(context.Context) error) {
	backoff := registerRetryMin
	for ctx.Err() == nil {
		start := a.clock.Now()
		err := watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if a.clock.Now().Sub(start) > registerRetryMax {
			backoff = registerRetryMin
		}
		a.log.Warn(what+" ended; listing again", "err", err, "in", backoff)
		if !a.sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, registerRetryMax)
	}
}

func (a *Agent) nodesWatch(ctx context.Context, peers *peerSet) error {
	l, err := a.c.List(ctx, api.KindNode, client.ListOptions{})
	if err != nil {
		return err
	}
	nodes := map[string]*api.Node{}
	for _, o := range l.Items {
		nodes[o.GetObjectMeta().Name] = o.(*api.Node)
	}
	w, err := a.c.Watch(ctx, api.KindNode, client.ListOptions{}, l.ResourceVersion)
	if err != nil {
		return err
	}
	defer w.Stop()
	var last []routes.Route
	apply := func(force bool) {
		if peers != nil {
			a.setPeers(peers, peerAddrs(a.cfg.NodeName, nodes))
		}
		if a.cfg.Routes == nil {
			return
		}
		want := nodeRoutes(a.cfg.NodeName, nodes)
		if !force && slices.Equal(want, last) {
			return
		}
		if err := a.cfg.Routes.Sync(ctx, want); err != nil {
			a.log.Warn("program routes to other nodes' pods", "err", err)
			return // the next change or resync tries again
		}
		last = want
	}
	apply(true)
	resync := a.clock.After(routesResync)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync:
			apply(true)
			resync = a.clock.After(routesResync)
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			switch ev.Type {
			case client.Relisted:
				// Listing again replaces the set in one step.
				return errRelisted
			case client.Added, client.Modified:
				n := ev.Object.(*api.Node)
				nodes[n.Name] = n
			case client.Deleted:
				delete(nodes, ev.Object.GetObjectMeta().Name)
			default:
				continue
			}
			apply(false)
		}
	}
}

// nodeRoutes is a route per other node that has a pod CIDR and an
// InternalIP, sorted by destination.
func nodeRoutes(self string, nodes map[string]*api.Node) []routes.Route {
	var out []routes.Route
	for name, n := range nodes {
		if name == self || n.Spec.PodCIDR == "" {
			continue
		}
		dst, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil {
			continue
		}
		for _, ad := range n.Status.Addresses {
			if ad.Type != api.NodeInternalIP {
				continue
			}
			if via, err := netip.ParseAddr(ad.Address); err == nil && !via.IsLoopback() {
				out = append(out, routes.Route{Dst: dst, Via: via})
			}
			break
		}
	}
	slices.SortFunc(out, func(x, y routes.Route) int {
		if c := x.Dst.Addr().Compare(y.Dst.Addr()); c != 0 {
			return c
		}
		return x.Dst.Bits() - y.Dst.Bits()
	})
	return out
}
