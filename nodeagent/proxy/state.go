package proxy

import (
	"fmt"
	"slices"
	"sync"

	"github.com/skiffhq/skiff/api"
)

// ServiceUpdate is one Service as it now is, for Proxier.Update.
type ServiceUpdate struct {
	Namespace, Name string
	// Service is nil when the Service is gone.
	Service *api.Service
	// Endpoints is nil when the Service has none.
	Endpoints *api.Endpoints
}

// programmedState is what the datapath serves, by service: the base of
// Update's diff and of the per-service metrics.
type programmedState struct {
	mu        sync.RWMutex // writers hold proxier.mu too; the metrics only read
	byService map[nsName][]ServicePort
	owner     map[PortKey]nsName
	skipped   map[nsName][]Skipped
}

func newProgrammedState() *programmedState {
	return &programmedState{byService: map[nsName][]ServicePort{}, owner: map[PortKey]nsName{}, skipped: map[nsName][]Skipped{}}
}

// reset replaces the state with a full set (after Sync).
func (s *programmedState) reset(ports []ServicePort, skipped []Skipped) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.byService)
	clear(s.owner)
	clear(s.skipped)
	for _, p := range ports {
		n := nsName{p.Namespace, p.Service}
		s.byService[n] = append(s.byService[n], p)
		s.owner[p.PortKey] = n
	}
	for _, sk := range skipped {
		n := nsName{sk.Namespace, sk.Service}
		s.skipped[n] = append(s.skipped[n], sk)
	}
}

// diff works out what an update of service n to ports changes: the ports
// to write (new or different) and the keys to delete. A port whose key
// another service already serves is moved to skipped.
func (s *programmedState) diff(n nsName, ports []ServicePort, skipped []Skipped) (keep, upsert []ServicePort, remove []PortKey, _ []Skipped) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	old := s.byService[n]
	for _, p := range ports {
		if o, taken := s.owner[p.PortKey]; taken && o != n {
			skipped = append(skipped, Skipped{Namespace: n.ns, Service: n.name, Port: p.PortName,
				Reason: fmt.Sprintf("%s is also served for %s/%s", p.PortKey, o.ns, o.name)})
			continue
		}
		keep = append(keep, p)
		i := slices.IndexFunc(old, func(o ServicePort) bool { return o.PortKey == p.PortKey })
		if i < 0 || !sameServing(old[i], p) {
			upsert = append(upsert, p)
		}
	}
	for _, o := range old {
		if !slices.ContainsFunc(keep, func(p ServicePort) bool { return p.PortKey == o.PortKey }) {
			remove = append(remove, o.PortKey)
		}
	}
	return keep, upsert, remove, skipped
}

// sameServing reports whether the datapath serves a and b alike (names
// aside, which only the metrics show).
func sameServing(a, b ServicePort) bool {
	return a.PortKey == b.PortKey && a.Affinity == b.Affinity && slices.Equal(a.Backends, b.Backends)
}

// set records that service n is now served with ports.
func (s *programmedState) set(n nsName, ports []ServicePort, skipped []Skipped) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.byService[n] {
		delete(s.owner, o.PortKey)
	}
	if len(ports) == 0 {
		delete(s.byService, n)
	} else {
		s.byService[n] = ports
	}
	for _, p := range ports {
		s.owner[p.PortKey] = n
	}
	if len(skipped) == 0 {
		delete(s.skipped, n)
	} else {
		s.skipped[n] = skipped
	}
}

// skippedOf returns the skipped ports of service n.
func (s *programmedState) skippedOf(n nsName) []Skipped {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.skipped[n]
}

// allSkipped returns every skipped port.
func (s *programmedState) allSkipped() map[Skipped]bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[Skipped]bool)
	for _, l := range s.skipped {
		for _, sk := range l {
			out[sk] = true
		}
	}
	return out
}

// ports copies the served ports (for a metrics scrape).
func (s *programmedState) ports() []ServicePort {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, l := range s.byService {
		n += len(l)
	}
	out := make([]ServicePort, 0, n)
	for _, l := range s.byService {
		out = append(out, l...)
	}
	return out
}
