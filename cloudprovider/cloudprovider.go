package cloudprovider

import (
	"context"
	"errors"
	"net/netip"

	"github.com/skiffhq/skiff/api"
)

// Interface is a cloud provider. Each accessor returns false when the
// provider does not support that feature; the matching controller then does
// nothing (a "local" provider without a pool has no load balancers, and
// LoadBalancer services stay pending, as in Kubernetes).
//
// Every method of a provider and of what it returns is safe for concurrent
// use: the node, route and service controllers call them from their own
// goroutines. Calls may block on the infrastructure, so controllers pass a
// context with a deadline and never call them while holding a lock.
type Interface interface {
	Instances() (Instances, bool)
	LoadBalancer() (LoadBalancer, bool)
	Routes() (Routes, bool)
	// ProviderName is the name New knows the provider by, and the scheme of
	// the provider IDs it hands out ("local://node-1").
	ProviderName() string
}

// Instances answers questions about the machines behind nodes.
type Instances interface {
	// InstanceExists reports whether the machine behind node still exists.
	// false means it is gone for good: the node controller deletes the node.
	// An error means "don't know" and must never lead to a deletion.
	InstanceExists(ctx context.Context, node *api.Node) (bool, error)
	// InstanceMetadata describes the machine; ErrNotFound (wrapped) when it
	// does not exist.
	InstanceMetadata(ctx context.Context, node *api.Node) (*InstanceMetadata, error)
}

// InstanceMetadata is what a provider knows about a node's machine.
type InstanceMetadata struct {
	// ProviderID is <provider>://<id>, stored in the node's spec.providerID.
	ProviderID    string
	InstanceType  string
	NodeAddresses []api.NodeAddress
	// Zone and Region become the node's LabelTopologyZone and
	// LabelTopologyRegion labels; empty means unknown (labels left alone).
	Zone   string
	Region string
}

// Well-known node labels that carry InstanceMetadata's zone and region, as
// in Kubernetes, so topologySpreadConstraints and affinities can use them.
const (
	LabelTopologyZone   = "topology.kubernetes.io/zone"
	LabelTopologyRegion = "topology.kubernetes.io/region"
)

// LoadBalancer gives Services of type LoadBalancer an external address.
// clusterName lets a provider shared by several clusters tell their load
// balancers apart. A service is identified by namespace/name and, when set,
// its UID: a deleted and recreated service is a different load balancer.
type LoadBalancer interface {
	// GetLoadBalancer returns the service's load balancer status, and false
	// (with a nil error) if it has none.
	GetLoadBalancer(ctx context.Context, clusterName string, svc *api.Service) (status *api.LoadBalancerStatus, exists bool, err error)
	// EnsureLoadBalancer creates the load balancer, or brings it in line with
	// svc and nodes, and returns the status to write to the service. It is
	// idempotent: calling it again for an unchanged service returns the same
	// status.
	EnsureLoadBalancer(ctx context.Context, clusterName string, svc *api.Service, nodes []*api.Node) (*api.LoadBalancerStatus, error)
	// UpdateLoadBalancer points an existing load balancer at a new set of
	// nodes; ErrNotFound (wrapped) when there is none.
	UpdateLoadBalancer(ctx context.Context, clusterName string, svc *api.Service, nodes []*api.Node) error
	// EnsureLoadBalancerDeleted deletes the load balancer; nil when there
	// was none.
	EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *api.Service) error
}

// Restorer is implemented by a LoadBalancer whose state lives in the control
// plane rather than in the infrastructure (the local provider's pool). The
// service controller calls Restore with every service when it starts, that
// is each time its server becomes leader, before its first EnsureLoadBalancer,
// so that addresses recorded in status.loadBalancer.ingress stay with their
// services and are never handed out twice.
type Restorer interface {
	// Restore replaces the provider's state with what services' statuses
	// record. It always completes; the error, if any, lists the claims it
	// dropped (an address claimed by two services, say).
	Restore(services []*api.Service) error
}

// Routes programs routes to node pod CIDRs.
type Routes interface {
	// ListRoutes lists the cluster's routes, sorted by name.
	ListRoutes(ctx context.Context, clusterName string) ([]*Route, error)
	// CreateRoute creates route; nameHint (the node's UID or name) is used
	// to name it when route.Name is empty. Creating a route that already
	// exists is not an error; one whose destination overlaps another node's
	// route is ErrConflict.
	CreateRoute(ctx context.Context, clusterName string, nameHint string, route *Route) error
	// DeleteRoute deletes route, found by name, or by target and destination
	// when the name is empty; nil when there was none.
	DeleteRoute(ctx context.Context, clusterName string, route *Route) error
}

// NodeName is the name of a node object.
type NodeName string

// Route sends traffic for DestinationCIDR (a node's pod CIDR) to TargetNode.
type Route struct {
	Name            string
	TargetNode      NodeName
	DestinationCIDR netip.Prefix
}

// Sentinel errors; providers wrap them with context (%w), callers check
// them with errors.Is.
var (
	// ErrNotFound: the instance, load balancer or route does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPoolExhausted: every address of the load balancer pool is taken.
	ErrPoolExhausted = errors.New("load balancer pool exhausted")
	// ErrAddressUnavailable: a requested spec.loadBalancerIP is not a valid
	// address, is outside the pool or is held by another service.
	ErrAddressUnavailable = errors.New("load balancer address unavailable")
	// ErrConflict: a route's destination overlaps another node's route.
	ErrConflict = errors.New("conflict")
	// ErrUnknownProvider: New was given a name it does not know.
	ErrUnknownProvider = errors.New("unknown cloud provider")
)
