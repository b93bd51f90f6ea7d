package cloudprovider

import (
	"fmt"
	"strings"
)

// Names of the built-in providers, as the server's --cloud-provider flag
// takes them.
const (
	ProviderLocal = "local"
	ProviderFake  = "fake"
)

// Providers lists the names New accepts, sorted.
func Providers() []string { return []string{ProviderFake, ProviderLocal} }

// Config configures a provider; each provider reads the fields it needs.
type Config struct {
	// LoadBalancerPool is where the local provider takes load balancer
	// addresses from, in order. Empty: no load balancers.
	LoadBalancerPool Pool
	// Zone and Region are the local provider's answer for nodes that carry
	// no LabelTopologyZone/LabelTopologyRegion label of their own.
	Zone   string
	Region string
}

// New builds the provider called name. There is no registry that providers
// add themselves to from init(): the built-in providers are listed here.
func New(name string, cfg Config) (Interface, error) {
	switch name {
	case ProviderLocal:
		return NewLocal(cfg)
	case ProviderFake:
		return NewFake(), nil
	}
	return nil, fmt.Errorf("cloud provider %q: %w (known: %s)", name, ErrUnknownProvider, strings.Join(Providers(), ", "))
}
