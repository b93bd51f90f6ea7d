package proxy

import (
	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/proxy/userspace"
)

// userspaceEngine serves service ports with the userspace proxy.
type userspaceEngine struct {
	p    *userspace.Proxy
	last map[PortKey]ServicePort // the set of the last sync or update
}

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
	return &userspaceEngine{p: p, last: map[PortKey]ServicePort{}}, nil
}

func (e *userspaceEngine) sync(ports []ServicePort) error {
	clear(e.last)
	for _, p := range ports {
		e.last[p.PortKey] = p
	}
	return e.apply()
}

// update changes the set and syncs it whole: the userspace proxy's Sync
// leaves unchanged listeners and their connections alone, at a cost that
// grows with the number of services.
func (e *userspaceEngine) update(upsert []ServicePort, remove []PortKey) error {
	for _, k := range remove {
		delete(e.last, k)
	}
	for _, p := range upsert {
		e.last[p.PortKey] = p
	}
	return e.apply()
}

func (e *userspaceEngine) apply() error {
	list := make([]userspace.Service, 0, len(e.last))
	for _, p := range e.last {
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
