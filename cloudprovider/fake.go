package cloudprovider

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/skiffhq/skiff/api"
)

// Method names a provider method, as recorded in a Call.
type Method string

// The methods Fake records.
const (
	MethodInstanceExists            Method = "InstanceExists"
	MethodInstanceMetadata          Method = "InstanceMetadata"
	MethodGetLoadBalancer           Method = "GetLoadBalancer"
	MethodEnsureLoadBalancer        Method = "EnsureLoadBalancer"
	MethodUpdateLoadBalancer        Method = "UpdateLoadBalancer"
	MethodEnsureLoadBalancerDeleted Method = "EnsureLoadBalancerDeleted"
	MethodRestore                   Method = "Restore"
	MethodListRoutes                Method = "ListRoutes"
	MethodCreateRoute               Method = "CreateRoute"
	MethodDeleteRoute               Method = "DeleteRoute"
)

// Feature is one of a provider's optional parts.
type Feature string

// Features a Fake can be told not to support.
const (
	FeatureInstances    Feature = "Instances"
	FeatureLoadBalancer Feature = "LoadBalancer"
	FeatureRoutes       Feature = "Routes"
)

// Call is one recorded call to a Fake; only the fields of its method's
// arguments are set. Objects are recorded by name, not by pointer, so a test
// can compare calls with reflect.DeepEqual however the objects changed since.
type Call struct {
	Method      Method
	ClusterName string
	Node        NodeName   // InstanceExists, InstanceMetadata
	Service     string     // namespace/name, load balancer methods
	Nodes       []NodeName // EnsureLoadBalancer, UpdateLoadBalancer
	Services    []string   // Restore
	NameHint    string     // CreateRoute
	Route       Route      // CreateRoute, DeleteRoute
}

// fakeIngressBase is the first address Fake hands to load balancers
// (TEST-NET-3, RFC 5737); each new load balancer gets the next one.
var fakeIngressBase = netip.MustParseAddr("203.0.113.1")

// Fake is a provider for controller tests. It records every call, and by
// default supports everything, reports every instance as existing (with
// provider ID fake://<node name> and the node's addresses), gives each new
// load balancer the next address from 203.0.113.1 up (a service keeps its
// address until EnsureLoadBalancerDeleted) and keeps routes in memory.
// SetError, SetInstanceExists, SetInstanceMetadata, SetLoadBalancerStatus and
// SetSupported change its answers. Safe for concurrent use.
type Fake struct {
	routes *routeTable

	mu          sync.Mutex
	calls       []Call
	errs        map[Method]error
	unsupported map[Feature]bool
	gone        map[NodeName]bool
	metadata    map[NodeName]*InstanceMetadata
	lbs         map[serviceKey]*api.LoadBalancerStatus
	canned      map[serviceKey]*api.LoadBalancerStatus
	next        netip.Addr
}

var (
	_ Interface    = (*Fake)(nil)
	_ Instances    = (*Fake)(nil)
	_ LoadBalancer = (*Fake)(nil)
	_ Restorer     = (*Fake)(nil)
	_ Routes       = (*Fake)(nil)
)

// NewFake returns a Fake with its defaults.
func NewFake() *Fake {
	return &Fake{
		routes:      newRouteTable(),
		errs:        map[Method]error{},
		unsupported: map[Feature]bool{},
		gone:        map[NodeName]bool{},
		metadata:    map[NodeName]*InstanceMetadata{},
		lbs:         map[serviceKey]*api.LoadBalancerStatus{},
		canned:      map[serviceKey]*api.LoadBalancerStatus{},
		next:        fakeIngressBase,
	}
}

// ProviderName is "fake".
func (f *Fake) ProviderName() string { return ProviderFake }

func (f *Fake) supports(ft Feature) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unsupported[ft]
}

// Instances returns f unless SetSupported turned instances off.
func (f *Fake) Instances() (Instances, bool) {
	if !f.supports(FeatureInstances) {
		return nil, false
	}
	return f, true
}

// LoadBalancer returns f unless SetSupported turned load balancers off.
func (f *Fake) LoadBalancer() (LoadBalancer, bool) {
	if !f.supports(FeatureLoadBalancer) {
		return nil, false
	}
	return f, true
}

// Routes returns f unless SetSupported turned routes off.
func (f *Fake) Routes() (Routes, bool) {
	if !f.supports(FeatureRoutes) {
		return nil, false
	}
	return f, true
}

// SetSupported turns a feature on or off.
func (f *Fake) SetSupported(ft Feature, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsupported[ft] = !on
}

// SetError makes every later call of m fail with err (nil: succeed again).
func (f *Fake) SetError(m Method, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.errs, m)
	} else {
		f.errs[m] = err
	}
}

// SetInstanceExists says whether the machine behind node exists; false is
// how a test says "this instance is gone".
func (f *Fake) SetInstanceExists(node NodeName, exists bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone[node] = !exists
}

// SetInstanceMetadata fixes InstanceMetadata's answer for node (nil: back
// to the default).
func (f *Fake) SetInstanceMetadata(node NodeName, m *InstanceMetadata) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m == nil {
		delete(f.metadata, node)
	} else {
		c := *m
		f.metadata[node] = &c
	}
}

// SetLoadBalancerStatus fixes what EnsureLoadBalancer returns for the
// service namespace/name (nil: back to the counter).
func (f *Fake) SetLoadBalancerStatus(namespace, name string, st *api.LoadBalancerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := serviceKey{namespace, name}
	if st == nil {
		delete(f.canned, k)
	} else {
		f.canned[k] = copyStatus(st)
	}
}

// Calls returns the calls so far, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallsTo returns the calls of m so far, oldest first.
func (f *Fake) CallsTo(m Method) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Method == m {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the calls so far.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// record notes c and returns the error configured for its method; the
// caller holds f.mu.
func (f *Fake) record(c Call) error {
	f.calls = append(f.calls, c)
	if err := f.errs[c.Method]; err != nil {
		return fmt.Errorf("fake %s: %w", c.Method, err)
	}
	return nil
}

func nodeNames(nodes []*api.Node) []NodeName {
	out := make([]NodeName, len(nodes))
	for i, n := range nodes {
		out[i] = NodeName(n.Name)
	}
	return out
}

func copyStatus(st *api.LoadBalancerStatus) *api.LoadBalancerStatus {
	return &api.LoadBalancerStatus{Ingress: slices.Clone(st.Ingress)}
}

// InstanceExists is true unless SetInstanceExists(node, false).
func (f *Fake) InstanceExists(_ context.Context, node *api.Node) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodInstanceExists, Node: NodeName(node.Name)}); err != nil {
		return false, err
	}
	return !f.gone[NodeName(node.Name)], nil
}

// InstanceMetadata is what SetInstanceMetadata fixed, or fake://<name> and
// the node's addresses; ErrNotFound for an instance that does not exist.
func (f *Fake) InstanceMetadata(_ context.Context, node *api.Node) (*InstanceMetadata, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := NodeName(node.Name)
	if err := f.record(Call{Method: MethodInstanceMetadata, Node: name}); err != nil {
		return nil, err
	}
	if f.gone[name] {
		return nil, fmt.Errorf("fake instance %s: %w", name, ErrNotFound)
	}
	if m, ok := f.metadata[name]; ok {
		c := *m
		c.NodeAddresses = slices.Clone(m.NodeAddresses)
		return &c, nil
	}
	return &InstanceMetadata{
		ProviderID:    ProviderFake + "://" + node.Name,
		NodeAddresses: slices.Clone(node.Status.Addresses),
	}, nil
}

// GetLoadBalancer returns what the last EnsureLoadBalancer returned.
func (f *Fake) GetLoadBalancer(_ context.Context, clusterName string, svc *api.Service) (*api.LoadBalancerStatus, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(svc)
	if err := f.record(Call{Method: MethodGetLoadBalancer, ClusterName: clusterName, Service: k.String()}); err != nil {
		return nil, false, err
	}
	st, ok := f.lbs[k]
	if !ok {
		return nil, false, nil
	}
	return copyStatus(st), true, nil
}

// EnsureLoadBalancer returns the service's status: the one set with
// SetLoadBalancerStatus, else the address it already has, else the next
// address of the counter.
func (f *Fake) EnsureLoadBalancer(_ context.Context, clusterName string, svc *api.Service, nodes []*api.Node) (*api.LoadBalancerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(svc)
	if err := f.record(Call{Method: MethodEnsureLoadBalancer, ClusterName: clusterName, Service: k.String(), Nodes: nodeNames(nodes)}); err != nil {
		return nil, err
	}
	switch st, ok := f.canned[k]; {
	case ok:
		f.lbs[k] = copyStatus(st)
	case f.lbs[k] == nil:
		f.lbs[k] = statusOf(f.next)
		f.next = f.next.Next()
	}
	return copyStatus(f.lbs[k]), nil
}

// UpdateLoadBalancer is ErrNotFound for a service without a load balancer.
func (f *Fake) UpdateLoadBalancer(_ context.Context, clusterName string, svc *api.Service, nodes []*api.Node) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(svc)
	if err := f.record(Call{Method: MethodUpdateLoadBalancer, ClusterName: clusterName, Service: k.String(), Nodes: nodeNames(nodes)}); err != nil {
		return err
	}
	if f.lbs[k] == nil {
		return fmt.Errorf("fake load balancer of service %s: %w", k, ErrNotFound)
	}
	return nil
}

// EnsureLoadBalancerDeleted forgets the service's load balancer.
func (f *Fake) EnsureLoadBalancerDeleted(_ context.Context, clusterName string, svc *api.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(svc)
	if err := f.record(Call{Method: MethodEnsureLoadBalancerDeleted, ClusterName: clusterName, Service: k.String()}); err != nil {
		return err
	}
	delete(f.lbs, k)
	return nil
}

// Restore records the services and adopts the statuses of those that have
// an ingress, so GetLoadBalancer sees them.
func (f *Fake) Restore(services []*api.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, len(services))
	for i, s := range services {
		names[i] = keyOf(s).String()
	}
	if err := f.record(Call{Method: MethodRestore, Services: names}); err != nil {
		return err
	}
	clear(f.lbs)
	for _, s := range services {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			f.lbs[keyOf(s)] = copyStatus(&s.Status.LoadBalancer)
		}
	}
	return nil
}

// ListRoutes lists the routes created so far.
func (f *Fake) ListRoutes(ctx context.Context, clusterName string) ([]*Route, error) {
	if err := f.recordUnlocked(Call{Method: MethodListRoutes, ClusterName: clusterName}); err != nil {
		return nil, err
	}
	return f.routes.ListRoutes(ctx, clusterName)
}

// CreateRoute adds route to the in-memory table (see Routes for the rules).
func (f *Fake) CreateRoute(ctx context.Context, clusterName, nameHint string, route *Route) error {
	if err := f.recordUnlocked(Call{Method: MethodCreateRoute, ClusterName: clusterName, NameHint: nameHint, Route: *route}); err != nil {
		return err
	}
	return f.routes.CreateRoute(ctx, clusterName, nameHint, route)
}

// DeleteRoute removes route from the in-memory table.
func (f *Fake) DeleteRoute(ctx context.Context, clusterName string, route *Route) error {
	if err := f.recordUnlocked(Call{Method: MethodDeleteRoute, ClusterName: clusterName, Route: *route}); err != nil {
		return err
	}
	return f.routes.DeleteRoute(ctx, clusterName, route)
}

func (f *Fake) recordUnlocked(c Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record(c)
}
