package proxy

import (
	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/proxy/userspace"
)

// userspaceEngine serves service ports with the userspace proxy.
type userspaceEngine struct{ p *userspace.Proxy }

func openUserspace(cfg Config) (engine, error) {
	p, err := userspace.New(userspace.Config{
		NetNS:          cfg.NetNS,
		Link:           cfg.Link,
		UDPIdleTimeout: cfg.UDPIdleTimeout,
		CloseTCP:       cfg.DestroyTCP,
		Logger:         cfg.Logger.With("proxy", "userspace"),
	})
	if err != nil {
		return nil, err
	}
	return &userspaceEngine{p: p}, nil
}

func (e *userspaceEngine) sync(ports []ServicePort) error {
	list := make([]userspace.Service, 0, len(ports))
	for _, p := range ports {
		list = append(list, userspace.Service{
			VIP:             p.VIP,
			Port:            p.Port,
			Protocol:        userspaceProtocol(p.Protocol),
			Backends:        p.Backends,
			AffinityTimeout: p.Affinity,
		})
	}
	return e.p.Sync(list)
}

func userspaceProtocol(p api.Protocol) userspace.Protocol {
	if p == api.ProtocolUDP {
		return userspace.UDP
	}
	return userspace.TCP
}

func (e *userspaceEngine) counters() (map[PortKey]PortCounters, error) {
	out := make(map[PortKey]PortCounters)
	for k, c := range e.p.Counters() {
		proto := api.ProtocolTCP
		if k.Protocol == userspace.UDP {
			proto = api.ProtocolUDP
		}
		out[PortKey{VIP: k.VIP, Port: k.Port, Protocol: proto}] = PortCounters{Connections: c.Connections, Datagrams: c.Datagrams}
	}
	return out, nil
}

func (e *userspaceEngine) close() error { return e.p.Close() }

func cleanupUserspace(cfg Config) error {
	return userspace.Cleanup(userspace.Config{NetNS: cfg.NetNS, Link: cfg.Link})
}
