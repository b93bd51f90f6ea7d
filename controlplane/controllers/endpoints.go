package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Store is what controllers need of the replicated store.
type Store interface {
	Get(key store.Key) (api.Object, error)
	List(kind api.Kind, opts store.ListOptions) ([]api.Object, uint64, error)
	ListAndWatch(kind api.Kind, opts store.ListOptions) ([]api.Object, uint64, store.Watcher, error)
	Create(ctx context.Context, o api.Object) (api.Object, error)
	Update(ctx context.Context, o api.Object) (api.Object, error)
	UpdateStatus(ctx context.Context, o api.Object) (api.Object, error)
	Delete(ctx context.Context, key store.Key, pre store.Preconditions) (api.Object, error)
	// Batch writes several objects in one log entry.
	Batch(ctx context.Context, ops []store.Op) ([]store.Result, error)
}

// Endpoints keeps each Service's Endpoints object equal to the pods its
// selector matches: ready pods with an IP as addresses, the others as
// notReadyAddresses, target ports resolved per pod (named ports too).
type Endpoints struct {
	Store Store
	Log   *slog.Logger
	queue *Queue[store.Key]
}

// endpointsWorkers Services are synced at once (kube-controller-manager
// runs 5).
const endpointsWorkers = 4

// Name implements Controller.
func (c *Endpoints) Name() string { return "endpoints" }

// Run reconciles until ctx ends.
func (c *Endpoints) Run(ctx context.Context) error {
	c.queue = NewQueue[store.Key]()
	svcs, _, sw, err := c.Store.ListAndWatch(api.KindService, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	defer sw.Stop()
	_, _, pw, err := c.Store.ListAndWatch(api.KindPod, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer pw.Stop()
	for _, s := range svcs {
		c.queue.Add(store.KeyOf(s))
	}
	// Endpoints left behind by services deleted while no leader ran.
	if eps, _, err := c.Store.List(api.KindEndpoints, store.ListOptions{}); err == nil {
		for _, e := range eps {
			c.queue.Add(store.Key{Kind: api.KindService, Namespace: e.GetObjectMeta().Namespace, Name: e.GetObjectMeta().Name})
		}
	}
	defer work(ctx, endpointsWorkers, c.queue, c.Log, c.sync)()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sw.Events():
			if !ok {
				return fmt.Errorf("service watch ended: %w", sw.Err())
			}
			c.queue.Add(store.KeyOf(e.Object))
		case e, ok := <-pw.Events():
			if !ok {
				return fmt.Errorf("pod watch ended: %w", pw.Err())
			}
			c.podChanged(e.Object)
		}
	}
}

// podChanged queues the services in the pod's namespace that select it.
// Watch events carry only the new state, so services that selected the
// pod's old labels are caught by selecting on every service whose selector
// matches, plus those whose Endpoints list this pod.
func (c *Endpoints) podChanged(o api.Object) {
	p := o.(*api.Pod)
	svcs, _, _ := c.Store.List(api.KindService, store.ListOptions{Namespace: p.Namespace})
	for _, s := range svcs {
		svc := s.(*api.Service)
		if selects(svc, p) || c.listed(svc, p) {
			c.queue.Add(store.KeyOf(svc))
		}
	}
}

func selects(s *api.Service, p *api.Pod) bool {
	if len(s.Spec.Selector) == 0 {
		return false
	}
	for k, v := range s.Spec.Selector {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

func (c *Endpoints) listed(s *api.Service, p *api.Pod) bool {
	o, err := c.Store.Get(store.Key{Kind: api.KindEndpoints, Namespace: s.Namespace, Name: s.Name})
	if err != nil {
		return false
	}
	for _, ss := range o.(*api.Endpoints).Subsets {
		for _, a := range append(append([]api.EndpointAddress{}, ss.Addresses...), ss.NotReadyAddresses...) {
			if a.TargetRef != nil && a.TargetRef.Name == p.Name {
				return true
			}
		}
	}
	return false
}

func (c *Endpoints) sync(ctx context.Context, k store.Key) error {
	epKey := store.Key{Kind: api.KindEndpoints, Namespace: k.Namespace, Name: k.Name}
	so, err := c.Store.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		_, err := c.Store.Delete(ctx, epKey, store.Preconditions{})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	svc := so.(*api.Service)
	if len(svc.Spec.Selector) == 0 {
		return nil // endpoints of selector-less services are managed by hand
	}
	pods, _, err := c.Store.List(api.KindPod, store.ListOptions{Namespace: svc.Namespace, Labels: api.SelectorFromSet(svc.Spec.Selector)})
	if err != nil {
		return err
	}
	subsets := EndpointSubsets(svc, pods)
	info, _ := api.ByKind(api.KindEndpoints)
	cur, err := c.Store.Get(epKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ep := info.New().(*api.Endpoints)
		ep.Namespace, ep.Name, ep.Labels, ep.Subsets = svc.Namespace, svc.Name, svc.Labels, subsets
		_, err = c.Store.Create(ctx, ep)
		return err
	case err != nil:
		return err
	}
	old := cur.(*api.Endpoints)
	if reflect.DeepEqual(old.Subsets, subsets) {
		return nil
	}
	ep := info.New().(*api.Endpoints)
	ep.ObjectMeta = old.ObjectMeta
	ep.Subsets = subsets
	_, err = c.Store.Update(ctx, ep)
	return err
}

// EndpointSubsets computes a service's subsets from the pods its selector
// matches: pods are grouped by the ports their containers resolve the
// service's target ports to (a named target port can differ per pod).
func EndpointSubsets(svc *api.Service, pods []api.Object) []api.EndpointSubset {
	type group struct {
		ports    []api.EndpointPort
		ready    []api.EndpointAddress
		notReady []api.EndpointAddress
	}
	groups := map[string]*group{}
	var order []string
	for _, o := range pods {
		p := o.(*api.Pod)
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			continue
		}
		var ports []api.EndpointPort
		for _, sp := range svc.Spec.Ports {
			port, ok := resolvePort(p, sp)
			if !ok {
				continue
			}
			ports = append(ports, api.EndpointPort{Name: sp.Name, Port: port, Protocol: sp.Protocol})
		}
		if len(ports) == 0 {
			continue
		}
		key := fmt.Sprint(ports)
		g := groups[key]
		if g == nil {
			g = &group{ports: ports}
			groups[key] = g
			order = append(order, key)
		}
		node := p.Spec.NodeName
		addr := api.EndpointAddress{IP: p.Status.PodIP, NodeName: &node,
			TargetRef: &api.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
		if podReady(p) {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}
	sort.Strings(order)
	var out []api.EndpointSubset
	for _, k := range order {
		g := groups[k]
		byIP := func(a []api.EndpointAddress) func(i, j int) bool {
			return func(i, j int) bool { return a[i].IP < a[j].IP }
		}
		sort.Slice(g.ready, byIP(g.ready))
		sort.Slice(g.notReady, byIP(g.notReady))
		out = append(out, api.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return out
}

func podReady(p *api.Pod) bool {
	c := podCondition(p, api.PodReady)
	return c != nil && c.Status == api.ConditionTrue
}

// resolvePort turns a service port's targetPort into the pod's port.
func resolvePort(p *api.Pod, sp api.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == api.IntOrStringString {
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && (cp.Protocol == sp.Protocol || cp.Protocol == "") {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if tp.IntVal != 0 {
		return tp.IntVal, true
	}
	return sp.Port, true
}
