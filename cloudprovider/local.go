package cloudprovider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/skiffhq/skiff/api"
)

// Local is the bare-metal provider:
//
//   - Instances: every registered node exists (there is no inventory to ask;
//     an operator removes a dead machine by deleting its node), with the
//     addresses its agent reported and provider ID local://<node name>.
//   - LoadBalancer: an address from Config.LoadBalancerPool per service,
//     supported only when a pool is configured. The provider only allocates:
//     the node agents' service datapath answers for the address, as MetalLB's
//     speakers do.
//   - Routes: an in-memory table (see routeTable); agents program the host
//     routes themselves.
type Local struct {
	instances localInstances
	lb        *poolLoadBalancer
	routes    *routeTable
}

var (
	_ Interface    = (*Local)(nil)
	_ Instances    = localInstances{}
	_ LoadBalancer = (*poolLoadBalancer)(nil)
	_ Restorer     = (*poolLoadBalancer)(nil)
)

// NewLocal builds the local provider.
func NewLocal(cfg Config) (*Local, error) {
	if err := cfg.LoadBalancerPool.Validate(); err != nil {
		return nil, fmt.Errorf("local cloud provider: load balancer pool: %w", err)
	}
	l := &Local{
		instances: localInstances{zone: cfg.Zone, region: cfg.Region},
		routes:    newRouteTable(),
	}
	if len(cfg.LoadBalancerPool) > 0 {
		l.lb = newPoolLoadBalancer(cfg.LoadBalancerPool)
	}
	return l, nil
}

// ProviderName is "local".
func (l *Local) ProviderName() string { return ProviderLocal }

// Instances is always supported.
func (l *Local) Instances() (Instances, bool) { return l.instances, true }

// LoadBalancer is supported when a pool is configured. What it returns also
// implements Restorer.
func (l *Local) LoadBalancer() (LoadBalancer, bool) {
	if l.lb == nil {
		return nil, false
	}
	return l.lb, true
}

// Routes is always supported.
func (l *Local) Routes() (Routes, bool) { return l.routes, true }

type localInstances struct{ zone, region string }

func (localInstances) InstanceExists(context.Context, *api.Node) (bool, error) { return true, nil }

func (i localInstances) InstanceMetadata(_ context.Context, node *api.Node) (*InstanceMetadata, error) {
	m := &InstanceMetadata{
		ProviderID:    node.Spec.ProviderID,
		NodeAddresses: slices.Clone(node.Status.Addresses),
		Zone:          cmp.Or(node.Labels[LabelTopologyZone], i.zone),
		Region:        cmp.Or(node.Labels[LabelTopologyRegion], i.region),
	}
	if m.ProviderID == "" {
		m.ProviderID = ProviderLocal + "://" + node.Name
	}
	return m, nil
}

// serviceKey identifies a service across updates; the UID, kept beside it,
// tells incarnations apart.
type serviceKey struct{ namespace, name string }

func keyOf(svc *api.Service) serviceKey { return serviceKey{svc.Namespace, svc.Name} }

func (k serviceKey) String() string { return k.namespace + "/" + k.name }

type lease struct {
	uid  api.UID
	addr netip.Addr
}

// sameIncarnation: an empty UID (a test object, or a holder restored from a
// status written before UIDs) matches any.
func (l lease) sameIncarnation(uid api.UID) bool { return l.uid == "" || uid == "" || l.uid == uid }

// poolLoadBalancer allocates one address per service from a pool: the
// first free address in pool order, unless the service asks for one with
// spec.loadBalancerIP. A service keeps its address until it is deleted
// (EnsureLoadBalancerDeleted) or recreated under a new UID. The state is
// in memory only; Restore rebuilds it from the services' statuses when a
// server becomes leader.
type poolLoadBalancer struct {
	pool Pool

	mu     sync.Mutex
	leases map[serviceKey]lease
	holder map[netip.Addr]serviceKey
}

func newPoolLoadBalancer(pool Pool) *poolLoadBalancer {
	return &poolLoadBalancer{pool: pool, leases: map[serviceKey]lease{}, holder: map[netip.Addr]serviceKey{}}
}

func statusOf(a netip.Addr) *api.LoadBalancerStatus {
	return &api.LoadBalancerStatus{Ingress: []api.LoadBalancerIngress{{IP: a.String()}}}
}

func (b *poolLoadBalancer) GetLoadBalancer(_ context.Context, _ string, svc *api.Service) (*api.LoadBalancerStatus, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.leases[keyOf(svc)]
	if !ok || !l.sameIncarnation(svc.UID) {
		return nil, false, nil
	}
	return statusOf(l.addr), true, nil
}

// EnsureLoadBalancer ignores nodes: every node's datapath serves every
// load balancer address.
func (b *poolLoadBalancer) EnsureLoadBalancer(_ context.Context, _ string, svc *api.Service, _ []*api.Node) (*api.LoadBalancerStatus, error) {
	key := keyOf(svc)
	b.mu.Lock()
	defer b.mu.Unlock()
	held, ok := b.leases[key]
	if ok && !held.sameIncarnation(svc.UID) {
		// The service was deleted and recreated while nobody released the
		// old address: the old one is gone, so is its claim.
		b.release(key)
		ok = false
	}
	if want := svc.Spec.LoadBalancerIP; want != "" {
		addr, err := parseAddr(want)
		switch {
		case err != nil:
			return nil, fmt.Errorf("service %s: loadBalancerIP %q: %v: %w", key, want, err, ErrAddressUnavailable)
		case ok && held.addr == addr:
			return statusOf(addr), nil
		case !b.pool.Contains(addr):
			return nil, fmt.Errorf("service %s: loadBalancerIP %s is outside the load balancer pool %s: %w", key, addr, b.pool, ErrAddressUnavailable)
		}
		if other, taken := b.holder[addr]; taken {
			return nil, fmt.Errorf("service %s: loadBalancerIP %s is held by service %s: %w", key, addr, other, ErrAddressUnavailable)
		}
		if ok {
			b.release(key) // moving to the requested address
		}
		b.take(key, svc.UID, addr)
		return statusOf(addr), nil
	}
	if ok {
		if held.uid == "" && svc.UID != "" {
			b.leases[key] = lease{uid: svc.UID, addr: held.addr}
		}
		return statusOf(held.addr), nil
	}
	addr, found := b.firstFree()
	if !found {
		return nil, fmt.Errorf("service %s: all %d addresses of %s are taken: %w", key, len(b.holder), b.pool, ErrPoolExhausted)
	}
	b.take(key, svc.UID, addr)
	return statusOf(addr), nil
}

// firstFree costs at most one step per held address plus one per range, so
// a huge IPv6 range is as cheap as a small one.
func (b *poolLoadBalancer) firstFree() (netip.Addr, bool) {
	for _, r := range b.pool {
		for a := r.First; a.IsValid() && a.Compare(r.Last) <= 0; a = a.Next() {
			if _, taken := b.holder[a]; !taken {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

func (b *poolLoadBalancer) take(key serviceKey, uid api.UID, addr netip.Addr) {
	b.leases[key] = lease{uid: uid, addr: addr}
	b.holder[addr] = key
}

func (b *poolLoadBalancer) release(key serviceKey) {
	if l, ok := b.leases[key]; ok {
		delete(b.holder, l.addr)
		delete(b.leases, key)
	}
}

// UpdateLoadBalancer has nothing to update (nodes do not matter), but
// reports a service that has no address.
func (b *poolLoadBalancer) UpdateLoadBalancer(_ context.Context, _ string, svc *api.Service, _ []*api.Node) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.leases[keyOf(svc)]; !ok || !l.sameIncarnation(svc.UID) {
		return fmt.Errorf("load balancer of service %s: %w", keyOf(svc), ErrNotFound)
	}
	return nil
}

// EnsureLoadBalancerDeleted releases the service's address, unless it is
// held by a newer incarnation of the service.
func (b *poolLoadBalancer) EnsureLoadBalancerDeleted(_ context.Context, _ string, svc *api.Service) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.leases[keyOf(svc)]; ok && l.sameIncarnation(svc.UID) {
		b.release(keyOf(svc))
	}
	return nil
}

// Restore rebuilds the allocations from status.loadBalancer.ingress, whatever
// the services' types (a service turned ClusterIP whose address was not
// released yet keeps it until the service controller deletes its load
// balancer). Addresses outside the pool are ignored: the next
// EnsureLoadBalancer moves their services into it. When two services claim
// the same address, the one that asked for it in spec.loadBalancerIP wins,
// then the older, then the first by namespace/name, so every server restores
// the same winner; the loser gets a new address on its next
// EnsureLoadBalancer.
func (b *poolLoadBalancer) Restore(services []*api.Service) error {
	type claim struct {
		addr netip.Addr
		svc  *api.Service
	}
	var claims []claim
	for _, svc := range services {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := parseAddr(in.IP); err == nil && b.pool.Contains(a) {
				claims = append(claims, claim{a, svc})
				break // one address per service
			}
		}
	}
	slices.SortFunc(claims, func(x, y claim) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		return compareClaimants(x.addr, x.svc, y.svc)
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.leases)
	clear(b.holder)
	var errs []error
	for _, c := range claims {
		key := keyOf(c.svc)
		if other, taken := b.holder[c.addr]; taken {
			if other == key {
				continue // the same service listed twice
			}
			errs = append(errs, fmt.Errorf("service %s: address %s is also claimed by service %s, which keeps it: %w", key, c.addr, other, ErrAddressUnavailable))
			continue
		}
		if _, dup := b.leases[key]; dup {
			errs = append(errs, fmt.Errorf("service %s is listed twice; keeping its first address", key))
			continue
		}
		b.take(key, c.svc.UID, c.addr)
	}
	return errors.Join(errs...)
}

// compareClaimants orders two services claiming addr, winner first.
func compareClaimants(addr netip.Addr, x, y *api.Service) int {
	asked := func(s *api.Service) int {
		if a, err := parseAddr(s.Spec.LoadBalancerIP); err == nil && a == addr {
			return 0
		}
		return 1
	}
	if c := cmp.Compare(asked(x), asked(y)); c != 0 {
		return c
	}
	if c := compareCreation(x, y); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
}

// compareCreation puts the older first; a missing timestamp sorts last.
func compareCreation(x, y *api.Service) int {
	xt, yt := x.CreationTimestamp, y.CreationTimestamp
	switch {
	case xt == nil && yt == nil:
		return 0
	case xt == nil:
		return 1
	case yt == nil:
		return -1
	}
	return xt.Compare(yt.Time)
}
