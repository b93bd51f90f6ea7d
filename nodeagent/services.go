package nodeagent

import (
	"context"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// ServiceProxy programs the node's service load balancing (package
// nodeagent/proxy: eBPF or userspace) with the whole set of Services and
// their Endpoints.
type ServiceProxy interface {
	Sync(ctx context.Context, services []*api.Service, endpoints []*api.Endpoints) error
}

// proxyRetry is how long a failed proxy sync waits before the next try
// when nothing changes meanwhile.
const proxyRetry = time.Second

// serviceCache is what the agent knows of the cluster's Services and
// Endpoints, fed by two watches.
type serviceCache struct {
	mu        sync.Mutex
	services  map[string]*api.Service   // namespace/name
	endpoints map[string]*api.Endpoints // namespace/name
	dirty     chan struct{}             // one token: something changed
}

func (c *serviceCache) changed() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// clear forgets every object of kind (c.mu held).
func (c *serviceCache) clear(kind api.Kind) {
	if kind == api.KindService {
		clear(c.services)
	} else {
		clear(c.endpoints)
	}
}

func (c *serviceCache) snapshot() ([]*api.Service, []*api.Endpoints) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svcs := make([]*api.Service, 0, len(c.services))
	for _, s := range c.services {
		svcs = append(svcs, s)
	}
	eps := make([]*api.Endpoints, 0, len(c.endpoints))
	for _, e := range c.endpoints {
		eps = append(eps, e)
	}
	return svcs, eps
}

// servicesLoop keeps the proxy programmed from watches of Services and
// Endpoints until ctx ends. Changes that arrive while a sync runs are
// coalesced into the next one.
func (a *Agent) servicesLoop(ctx context.Context) {
	c := &serviceCache{services: map[string]*api.Service{}, endpoints: map[string]*api.Endpoints{}, dirty: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.watchKind(ctx, api.KindService, c) })
	wg.Go(func() { a.watchKind(ctx, api.KindEndpoints, c) })
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.dirty:
		case <-retry:
		}
		retry = nil
		svcs, eps := c.snapshot()
		start := a.clock.Now()
		if err := a.cfg.Proxy.Sync(ctx, svcs, eps); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("program service load balancing; retrying", "err", err, "in", proxyRetry)
			retry = a.clock.After(proxyRetry)
			continue
		}
		a.log.Debug("service load balancing programmed", "services", len(svcs), "took", a.clock.Now().Sub(start))
	}
}

// watchKind lists and watches one kind into c until ctx ends, listing
// again when a watch ends.
func (a *Agent) watchKind(ctx context.Context, kind api.Kind, c *serviceCache) {
	a.relistLoop(ctx, string(kind)+" watch", func(ctx context.Context) error { return a.watchKindOnce(ctx, kind, c) })
}

func (a *Agent) watchKindOnce(ctx context.Context, kind api.Kind, c *serviceCache) error {
	l, err := a.c.List(ctx, kind, client.ListOptions{})
	if err != nil {
		return err
	}
	set := func(o api.Object) {
		m := o.GetObjectMeta()
		key := m.Namespace + "/" + m.Name
		switch o := o.(type) {
		case *api.Service:
			c.services[key] = o
		case *api.Endpoints:
			c.endpoints[key] = o
		}
	}
	c.mu.Lock()
	c.clear(kind)
	for _, o := range l.Items {
		set(o)
	}
	c.mu.Unlock()
	c.changed()
	w, err := a.c.Watch(ctx, kind, client.ListOptions{}, l.ResourceVersion)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			c.mu.Lock()
			switch ev.Type {
			case client.Relisted:
				// The ADDED events that follow are the whole set.
				c.clear(kind)
			case client.Added, client.Modified:
				set(ev.Object)
			case client.Deleted:
				m := ev.Object.GetObjectMeta()
				if kind == api.KindService {
					delete(c.services, m.Namespace+"/"+m.Name)
				} else {
					delete(c.endpoints, m.Namespace+"/"+m.Name)
				}
			}
			c.mu.Unlock()
			c.changed()
		}
	}
}
