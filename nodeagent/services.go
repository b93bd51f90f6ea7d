package nodeagent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// ServiceProxy programs the node's service load balancing (package
// nodeagent/proxy: eBPF or userspace): Sync with the whole set of Services
// and their Endpoints, Update with the ones a watch event changed.
type ServiceProxy interface {
	Sync(ctx context.Context, services []*api.Service, endpoints []*api.Endpoints) error
	Update(ctx context.Context, updates []proxy.ServiceUpdate) error
}

// proxyRetry is how long a failed proxy sync waits before the next try
// when nothing changes meanwhile.
const proxyRetry = time.Second

// serviceCache is what the agent knows of the cluster's Services and
// Endpoints, fed by two watches, and what changed since the proxy was
// last programmed.
type serviceCache struct {
	mu        sync.Mutex
	services  map[string]*api.Service   // namespace/name
	endpoints map[string]*api.Endpoints // namespace/name
	changed   map[string]bool           // namespace/name changed since the last take
	full      bool                      // a list replaced a kind: program the whole set
	// listed counts the kinds listed so far: nothing is programmed before
	// both are, or a restarted agent would program its Services without
	// their Endpoints, refusing connections that the pinned datapath was
	// serving.
	listed map[api.Kind]bool
	dirty  chan struct{} // one token: something changed
}

func newServiceCache() *serviceCache {
	return &serviceCache{
		services:  map[string]*api.Service{},
		endpoints: map[string]*api.Endpoints{},
		changed:   map[string]bool{},
		listed:    map[api.Kind]bool{},
		dirty:     make(chan struct{}, 1),
	}
}

func (c *serviceCache) notify() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// replace sets every object of kind to objs (c.mu held).
func (c *serviceCache) replace(kind api.Kind, objs []api.Object) {
	if kind == api.KindService {
		clear(c.services)
	} else {
		clear(c.endpoints)
	}
	for _, o := range objs {
		c.set(o)
	}
	c.full = true
	c.listed[kind] = true
}

// set records o (c.mu held).
func (c *serviceCache) set(o api.Object) {
	m := o.GetObjectMeta()
	key := m.Namespace + "/" + m.Name
	switch o := o.(type) {
	case *api.Service:
		c.services[key] = o
	case *api.Endpoints:
		c.endpoints[key] = o
	}
	c.changed[key] = true
}

// remove forgets the object of kind named by m (c.mu held).
func (c *serviceCache) remove(kind api.Kind, m *api.ObjectMeta) {
	key := m.Namespace + "/" + m.Name
	if kind == api.KindService {
		delete(c.services, key)
	} else {
		delete(c.endpoints, key)
	}
	c.changed[key] = true
}

// take returns what to program: the whole set (full) or the changed
// services, and starts recording changes over.
func (c *serviceCache) take() (full bool, svcs []*api.Service, eps []*api.Endpoints, updates []proxy.ServiceUpdate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listed[api.KindService] || !c.listed[api.KindEndpoints] {
		return false, nil, nil, nil
	}
	defer clear(c.changed)
	if c.full {
		c.full = false
		svcs = make([]*api.Service, 0, len(c.services))
		for _, s := range c.services {
			svcs = append(svcs, s)
		}
		eps = make([]*api.Endpoints, 0, len(c.endpoints))
		for _, e := range c.endpoints {
			eps = append(eps, e)
		}
		return true, svcs, eps, nil
	}
	for key := range c.changed {
		ns, name, _ := strings.Cut(key, "/")
		updates = append(updates, proxy.ServiceUpdate{Namespace: ns, Name: name, Service: c.services[key], Endpoints: c.endpoints[key]})
	}
	return false, nil, nil, updates
}

// fail makes the next take the whole set: after a failed write the
// datapath's state is not known.
func (c *serviceCache) fail() {
	c.mu.Lock()
	c.full = true
	c.mu.Unlock()
}

// servicesLoop keeps the proxy programmed from watches of Services and
// Endpoints until ctx ends: the whole set after each list, the changed
// services after watch events. Changes that arrive while the proxy is
// being programmed are coalesced into the next write.
func (a *Agent) servicesLoop(ctx context.Context) {
	c := newServiceCache()
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
		full, svcs, eps, updates := c.take()
		if !full && len(updates) == 0 {
			continue
		}
		start := a.clock.Now()
		var err error
		if full {
			err = a.cfg.Proxy.Sync(ctx, svcs, eps)
		} else {
			err = a.cfg.Proxy.Update(ctx, updates)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("program service load balancing; retrying with the whole set", "err", err, "in", proxyRetry)
			c.fail()
			retry = a.clock.After(proxyRetry)
			continue
		}
		a.log.Debug("service load balancing programmed", "full", full, "services", len(svcs), "updates", len(updates), "took", a.clock.Now().Sub(start))
	}
}

// watchKind lists and watches one kind into c until ctx ends, listing
// again when a watch ends.
func (a *Agent) watchKind(ctx context.Context, kind api.Kind, c *serviceCache) {
	a.relistLoop(ctx, string(kind)+" watch", func(ctx context.Context) error { return a.watchKindOnce(ctx, kind, c) })
}

// errRelisted ends a watch whose stream was relisted: listing again
// replaces the cache in one step, where the stream's ADDED events would
// empty it first.
var errRelisted = errors.New("watch relisted")

func (a *Agent) watchKindOnce(ctx context.Context, kind api.Kind, c *serviceCache) error {
	for {
		err := a.listWatchKind(ctx, kind, c)
		if !errors.Is(err, errRelisted) {
			return err
		}
		a.log.Info(string(kind) + " watch fell behind; listing again")
	}
}

func (a *Agent) listWatchKind(ctx context.Context, kind api.Kind, c *serviceCache) error {
	l, err := a.c.List(ctx, kind, client.ListOptions{})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.replace(kind, l.Items)
	c.mu.Unlock()
	c.notify()
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
			switch ev.Type {
			case client.Relisted:
				return errRelisted
			case client.Added, client.Modified:
				c.mu.Lock()
				c.set(ev.Object)
				c.mu.Unlock()
			case client.Deleted:
				c.mu.Lock()
				c.remove(kind, ev.Object.GetObjectMeta())
				c.mu.Unlock()
			default:
				continue
			}
			c.notify()
		}
	}
}
