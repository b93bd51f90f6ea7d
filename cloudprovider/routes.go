package cloudprovider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// routeTable is an in-memory Routes: the local provider's whole answer (the
// node agents program host routes to the other nodes' pod CIDRs themselves,
// from the node objects; the route controller only records the routes it
// wants so that it can tell what is missing and what is stale) and the
// fake's storage.
type routeTable struct {
	mu        sync.Mutex
	byCluster map[string][]Route // sorted by name
}

var _ Routes = (*routeTable)(nil)

func newRouteTable() *routeTable { return &routeTable{byCluster: map[string][]Route{}} }

func (t *routeTable) ListRoutes(_ context.Context, clusterName string) ([]*Route, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.byCluster[clusterName]
	out := make([]*Route, len(rs))
	for i := range rs {
		r := rs[i]
		out[i] = &r
	}
	return out, nil
}

func (t *routeTable) CreateRoute(_ context.Context, clusterName, nameHint string, route *Route) error {
	r := *route
	switch {
	case r.TargetNode == "":
		return fmt.Errorf("route to %s: no target node", r.DestinationCIDR)
	case !r.DestinationCIDR.IsValid():
		return fmt.Errorf("route to node %s: invalid destination", r.TargetNode)
	case r.DestinationCIDR.Masked() != r.DestinationCIDR:
		return fmt.Errorf("route to node %s: destination %s has host bits set", r.TargetNode, r.DestinationCIDR)
	}
	if r.Name == "" {
		r.Name = routeName(nameHint, r)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.byCluster[clusterName]
	for _, o := range rs {
		switch {
		case o.TargetNode == r.TargetNode && o.DestinationCIDR == r.DestinationCIDR:
			return nil // already there, whatever its name
		case o.DestinationCIDR.Overlaps(r.DestinationCIDR):
			return fmt.Errorf("route %s (%s via node %s) overlaps route %s (%s via node %s): %w",
				r.Name, r.DestinationCIDR, r.TargetNode, o.Name, o.DestinationCIDR, o.TargetNode, ErrConflict)
		case o.Name == r.Name:
			return fmt.Errorf("route name %s is taken by the route to %s via node %s: %w", r.Name, o.DestinationCIDR, o.TargetNode, ErrConflict)
		}
	}
	i, _ := slices.BinarySearchFunc(rs, r.Name, func(o Route, name string) int { return strings.Compare(o.Name, name) })
	t.byCluster[clusterName] = slices.Insert(rs, i, r)
	return nil
}

// routeName names a route after the hint (or the node) and its destination,
// so that a node's IPv4 and IPv6 pod CIDRs get different names.
func routeName(hint string, r Route) string {
	if hint == "" {
		hint = string(r.TargetNode)
	}
	d := strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(r.DestinationCIDR.String())
	return hint + "-" + d
}

func (t *routeTable) DeleteRoute(_ context.Context, clusterName string, route *Route) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.byCluster[clusterName]
	i := slices.IndexFunc(rs, func(o Route) bool {
		if route.Name != "" {
			return o.Name == route.Name
		}
		return o.TargetNode == route.TargetNode && o.DestinationCIDR == route.DestinationCIDR
	})
	if i < 0 {
		return nil
	}
	rs = slices.Delete(rs, i, i+1)
	if len(rs) == 0 {
		delete(t.byCluster, clusterName)
	} else {
		t.byCluster[clusterName] = rs
	}
	return nil
}
