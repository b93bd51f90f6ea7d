package cloudprovider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

// lbService is a fixture: a LoadBalancer service "namespace/name".
func lbService(key string, uid api.UID, requestedIP string) *api.Service {
	ns, name, _ := strings.Cut(key, "/")
	return &api.Service{
		ObjectMeta: api.ObjectMeta{Namespace: ns, Name: name, UID: uid},
		Spec:       api.ServiceSpec{Type: api.ServiceTypeLoadBalancer, LoadBalancerIP: requestedIP},
	}
}

// withIngress sets the status a previous leader would have written.
func withIngress(s *api.Service, ip string, created int) *api.Service {
	s.Status.LoadBalancer.Ingress = []api.LoadBalancerIngress{{IP: ip}}
	if created > 0 {
		s.CreationTimestamp = &api.Time{Time: time.Unix(int64(created), 0)}
	}
	return s
}

func newPoolLB(t *testing.T, pool string) *poolLoadBalancer {
	t.Helper()
	p, err := ParsePool(pool)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(Config{LoadBalancerPool: p})
	if err != nil {
		t.Fatal(err)
	}
	lb, ok := l.LoadBalancer()
	if !ok {
		t.Fatal("local provider with a pool has no load balancer")
	}
	return lb.(*poolLoadBalancer)
}

func ingressIP(st *api.LoadBalancerStatus) string {
	if st == nil || len(st.Ingress) != 1 {
		return fmt.Sprintf("bad status %+v", st)
	}
	return st.Ingress[0].IP
}

type lbStep struct {
	op      string // ensure, delete, get, update
	svc     string // namespace/name
	uid     api.UID
	ip      string   // spec.loadBalancerIP
	want    string   // ingress IP; for get, "" means none
	err     error    // sentinel the error must wrap
	errText []string // and text it must contain
}

func TestLocalLoadBalancerAllocation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		pool  string
		steps []lbStep
	}{
		{name: "first free address in pool order", pool: "10.0.0.10-10.0.0.11,10.0.1.0/31", steps: []lbStep{
			{op: "ensure", svc: "a/one", want: "10.0.0.10"},
			{op: "ensure", svc: "a/two", want: "10.0.0.11"},
			{op: "ensure", svc: "b/one", want: "10.0.1.0"},
			{op: "ensure", svc: "b/two", want: "10.0.1.1"},
			{op: "ensure", svc: "b/three", err: ErrPoolExhausted, errText: []string{"service b/three", "all 4 addresses of 10.0.0.10/31,10.0.1.0/31 are taken"}},
		}},
		{name: "sticky across calls and updates", pool: "10.0.0.0/30", steps: []lbStep{
			{op: "ensure", svc: "a/x", uid: "u1", want: "10.0.0.0"},
			{op: "ensure", svc: "a/y", uid: "u2", want: "10.0.0.1"},
			{op: "ensure", svc: "a/x", uid: "u1", want: "10.0.0.0"},
			{op: "get", svc: "a/x", uid: "u1", want: "10.0.0.0"},
			{op: "update", svc: "a/x", uid: "u1"},
			{op: "delete", svc: "a/x", uid: "u1"},
			{op: "get", svc: "a/x", uid: "u1", want: ""},
			{op: "update", svc: "a/x", uid: "u1", err: ErrNotFound},
			{op: "ensure", svc: "a/y", uid: "u2", want: "10.0.0.1"},
			{op: "ensure", svc: "a/z", uid: "u3", want: "10.0.0.0"}, // released address is reused
		}},
		{name: "release on delete, delete idempotent", pool: "10.0.0.1", steps: []lbStep{
			{op: "ensure", svc: "a/x", want: "10.0.0.1"},
			{op: "ensure", svc: "a/y", err: ErrPoolExhausted},
			{op: "delete", svc: "a/x"},
			{op: "delete", svc: "a/x"},
			{op: "ensure", svc: "a/y", want: "10.0.0.1"},
		}},
		{name: "recreated service is a new incarnation", pool: "10.0.0.0/30", steps: []lbStep{
			{op: "ensure", svc: "a/x", uid: "old", want: "10.0.0.0"},
			{op: "ensure", svc: "a/y", uid: "y", want: "10.0.0.1"},
			{op: "get", svc: "a/x", uid: "new", want: ""},
			{op: "ensure", svc: "a/x", uid: "new", ip: "10.0.0.3", want: "10.0.0.3"},
			// the old incarnation's late delete must not release the new one's address
			{op: "delete", svc: "a/x", uid: "old"},
			{op: "get", svc: "a/x", uid: "new", want: "10.0.0.3"},
			{op: "ensure", svc: "a/z", uid: "z", want: "10.0.0.0"},
		}},
		{name: "requested address", pool: "10.0.0.0/29", steps: []lbStep{
			{op: "ensure", svc: "a/x", ip: "10.0.0.5", want: "10.0.0.5"},
			{op: "ensure", svc: "a/x", ip: "10.0.0.5", want: "10.0.0.5"},
			{op: "ensure", svc: "a/y", want: "10.0.0.0"},
			{op: "ensure", svc: "a/z", ip: "10.0.0.5", err: ErrAddressUnavailable, errText: []string{"service a/z", "loadBalancerIP 10.0.0.5 is held by service a/x"}},
			{op: "get", svc: "a/z", want: ""},
			{op: "ensure", svc: "a/z", ip: "10.0.1.5", err: ErrAddressUnavailable, errText: []string{"loadBalancerIP 10.0.1.5 is outside the load balancer pool 10.0.0.0/29"}},
			{op: "ensure", svc: "a/z", ip: "not-an-ip", err: ErrAddressUnavailable, errText: []string{`loadBalancerIP "not-an-ip"`}},
			// a service moves to a newly requested free address, freeing its old one
			{op: "ensure", svc: "a/y", ip: "10.0.0.7", want: "10.0.0.7"},
			{op: "ensure", svc: "a/z", want: "10.0.0.0"},
			// a refused move keeps the address the service has
			{op: "ensure", svc: "a/y", ip: "10.0.0.5", err: ErrAddressUnavailable},
			{op: "get", svc: "a/y", want: "10.0.0.7"},
			// dropping the request keeps the address (sticky)
			{op: "ensure", svc: "a/x", want: "10.0.0.5"},
		}},
		{name: "requested address in IPv4-mapped form", pool: "10.0.0.0/30", steps: []lbStep{
			{op: "ensure", svc: "a/x", ip: "::ffff:10.0.0.2", want: "10.0.0.2"},
			{op: "ensure", svc: "a/y", ip: "10.0.0.2", err: ErrAddressUnavailable},
		}},
		{name: "requested address is skipped by the free scan", pool: "10.0.0.0/30", steps: []lbStep{
			{op: "ensure", svc: "a/x", ip: "10.0.0.0", want: "10.0.0.0"},
			{op: "ensure", svc: "a/y", want: "10.0.0.1"},
		}},
		{name: "huge IPv6 range", pool: "fd00::/64", steps: []lbStep{
			{op: "ensure", svc: "a/x", want: "fd00::"},
			{op: "ensure", svc: "a/y", want: "fd00::1"},
			{op: "ensure", svc: "a/z", ip: "fd00::ffff:ffff:ffff:ffff", want: "fd00::ffff:ffff:ffff:ffff"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := newPoolLB(t, tc.pool)
			for i, s := range tc.steps {
				svc := lbService(s.svc, s.uid, s.ip)
				var (
					st  *api.LoadBalancerStatus
					err error
				)
				switch s.op {
				case "ensure":
					st, err = lb.EnsureLoadBalancer(ctx, "c", svc, nil)
				case "delete":
					err = lb.EnsureLoadBalancerDeleted(ctx, "c", svc)
				case "update":
					err = lb.UpdateLoadBalancer(ctx, "c", svc, nil)
				case "get":
					var exists bool
					st, exists, err = lb.GetLoadBalancer(ctx, "c", svc)
					if exists != (s.want != "") || (st == nil) == exists {
						t.Fatalf("step %d: get %s = %v, %v; want %q", i, s.svc, st, exists, s.want)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, s.op)
				}
				if s.err != nil {
					if !errors.Is(err, s.err) {
						t.Fatalf("step %d: %s %s: err = %v, want %v", i, s.op, s.svc, err, s.err)
					}
					for _, text := range s.errText {
						if !strings.Contains(err.Error(), text) {
							t.Errorf("step %d: error %q does not say %q", i, err, text)
						}
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %s %s: %v", i, s.op, s.svc, err)
				}
				if s.want != "" && ingressIP(st) != s.want {
					t.Fatalf("step %d: %s %s = %s, want %s", i, s.op, s.svc, ingressIP(st), s.want)
				}
			}
			checkConsistent(t, lb)
		})
	}
}

// checkConsistent checks the two indexes agree: one holder per address, one
// address per service.
func checkConsistent(t *testing.T, lb *poolLoadBalancer) {
	t.Helper()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if len(lb.leases) != len(lb.holder) {
		t.Fatalf("%d leases but %d held addresses", len(lb.leases), len(lb.holder))
	}
	for k, l := range lb.leases {
		if lb.holder[l.addr] != k {
			t.Fatalf("service %s holds %s, whose holder is %s", k, l.addr, lb.holder[l.addr])
		}
		if !lb.pool.Contains(l.addr) {
			t.Fatalf("service %s holds %s, outside the pool", k, l.addr)
		}
	}
}

func TestLocalLoadBalancerRestore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		pool     string
		services []*api.Service
		want     map[string]string // namespace/name -> address after Restore
		wantErr  []string
		// then: a new service gets this address
		next string
	}{
		{
			name: "statuses are adopted",
			pool: "10.0.0.0/29",
			services: []*api.Service{
				withIngress(lbService("a/x", "ux", ""), "10.0.0.2", 0),
				withIngress(lbService("a/y", "uy", ""), "10.0.0.0", 0),
				lbService("a/pending", "up", ""),
			},
			want: map[string]string{"a/x": "10.0.0.2", "a/y": "10.0.0.0"},
			next: "10.0.0.1",
		},
		{
			name: "duplicate claim: requester wins",
			pool: "10.0.0.0/29",
			services: []*api.Service{
				withIngress(lbService("a/early", "u1", ""), "10.0.0.3", 1),
				withIngress(lbService("a/asked", "u2", "10.0.0.3"), "10.0.0.3", 2),
			},
			want:    map[string]string{"a/asked": "10.0.0.3"},
			wantErr: []string{"service a/early: address 10.0.0.3 is also claimed by service a/asked, which keeps it"},
			next:    "10.0.0.0",
		},
		{
			name: "duplicate claim: older wins, then name",
			pool: "10.0.0.0/29",
			services: []*api.Service{
				withIngress(lbService("b/new", "u1", ""), "10.0.0.1", 5),
				withIngress(lbService("b/old", "u2", ""), "10.0.0.1", 3),
				withIngress(lbService("c/z", "u3", ""), "10.0.0.2", 0),
				withIngress(lbService("c/a", "u4", ""), "10.0.0.2", 0),
			},
			want:    map[string]string{"b/old": "10.0.0.1", "c/a": "10.0.0.2"},
			wantErr: []string{"service b/new: address 10.0.0.1", "service c/z: address 10.0.0.2"},
			next:    "10.0.0.0",
		},
		{
			name: "outside the pool, hostnames and junk are ignored",
			pool: "10.0.0.0/30",
			services: []*api.Service{
				withIngress(lbService("a/moved", "u1", ""), "192.168.0.9", 0),
				withIngress(lbService("a/host", "u2", ""), "", 0),
				withIngress(lbService("a/junk", "u3", ""), "bogus", 0),
			},
			want: map[string]string{},
			next: "10.0.0.0",
		},
		{
			name: "a service listed twice is not a conflict",
			pool: "10.0.0.0/30",
			services: []*api.Service{
				withIngress(lbService("a/x", "u1", ""), "10.0.0.1", 0),
				withIngress(lbService("a/x", "u1", ""), "10.0.0.1", 0),
			},
			want: map[string]string{"a/x": "10.0.0.1"},
			next: "10.0.0.0",
		},
		{
			name: "a ClusterIP service still holding an address keeps it",
			pool: "10.0.0.0/31",
			services: func() []*api.Service {
				s := withIngress(lbService("a/was-lb", "u1", ""), "10.0.0.0", 0)
				s.Spec.Type = api.ServiceTypeClusterIP
				return []*api.Service{s}
			}(),
			want: map[string]string{"a/was-lb": "10.0.0.0"},
			next: "10.0.0.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := newPoolLB(t, tc.pool)
			// State from an earlier leadership term must not survive Restore.
			if _, err := lb.EnsureLoadBalancer(ctx, "c", lbService("stale/svc", "s", ""), nil); err != nil {
				t.Fatal(err)
			}
			err := lb.Restore(tc.services)
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("Restore: %v", err)
			}
			for _, text := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), text) {
					t.Errorf("Restore error %v does not say %q", err, text)
				}
			}
			checkConsistent(t, lb)
			if len(lb.leases) != len(tc.want) {
				t.Errorf("%d leases after Restore, want %d: %v", len(lb.leases), len(tc.want), lb.leases)
			}
			for _, svc := range tc.services {
				st, exists, err := lb.GetLoadBalancer(ctx, "c", svc)
				want, ok := tc.want[svc.Namespace+"/"+svc.Name]
				if err != nil || exists != ok || (ok && ingressIP(st) != want) {
					t.Errorf("after Restore, %s/%s has %v, %v, %v; want %q", svc.Namespace, svc.Name, st, exists, err, want)
				}
				// Ensure after Restore keeps the restored address.
				if ok {
					st, err := lb.EnsureLoadBalancer(ctx, "c", svc, nil)
					if err != nil || ingressIP(st) != want {
						t.Errorf("Ensure %s/%s after Restore = %v, %v; want %s", svc.Namespace, svc.Name, st, err, want)
					}
				}
			}
			st, err := lb.EnsureLoadBalancer(ctx, "c", lbService("new/svc", "n", ""), nil)
			if err != nil || ingressIP(st) != tc.next {
				t.Errorf("new service after Restore got %v, %v; want %s", st, err, tc.next)
			}
			checkConsistent(t, lb)
		})
	}
}

// TestLocalLoadBalancerRestoreIsDeterministic restores the same services in
// every order a shuffled store could list them and expects one outcome, as
// two servers taking over one after the other must agree.
func TestLocalLoadBalancerRestoreIsDeterministic(t *testing.T) {
	services := []*api.Service{
		withIngress(lbService("a/x", "1", ""), "10.0.0.1", 2),
		withIngress(lbService("a/y", "2", ""), "10.0.0.1", 1),
		withIngress(lbService("a/z", "3", ""), "10.0.0.1", 0),
		withIngress(lbService("a/w", "4", ""), "10.0.0.2", 0),
	}
	var want string
	perms := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}}
	for _, perm := range perms {
		lb := newPoolLB(t, "10.0.0.0/29")
		in := make([]*api.Service, len(perm))
		for i, j := range perm {
			in[i] = services[j]
		}
		_ = lb.Restore(in)
		got := fmt.Sprint(lb.leases)
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("order %v restored %s, another order %s", perm, got, want)
		}
	}
	if !strings.Contains(want, "a/y") || strings.Contains(want, "a/x") {
		t.Fatalf("the older claimant a/y should win: %s", want)
	}
}

func TestLocalLoadBalancerConcurrent(t *testing.T) {
	ctx := context.Background()
	lb := newPoolLB(t, "10.1.0.0/24")
	const services, callers = 200, 4 // 200 services for 256 addresses, each ensured by 4 goroutines
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]string{}
	)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range services {
				i := (i + c*37) % services // callers visit services in different orders
				svc := lbService(fmt.Sprintf("ns/svc-%d", i), api.UID(fmt.Sprint(i)), "")
				st, err := lb.EnsureLoadBalancer(ctx, "c", svc, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := got[svc.Name]; ok && prev != ingressIP(st) {
					t.Errorf("%s got %s and %s", svc.Name, prev, ingressIP(st))
				}
				got[svc.Name] = ingressIP(st)
				mu.Unlock()
				if i%10 == c {
					if st2, ok, err := lb.GetLoadBalancer(ctx, "c", svc); !ok || err != nil || ingressIP(st2) != ingressIP(st) {
						t.Errorf("Get %s = %v, %v, %v after Ensure gave %s", svc.Name, st2, ok, err, ingressIP(st))
					}
				}
			}
		}()
	}
	wg.Wait()
	checkConsistent(t, lb)

	// Without the Restores, distinct services never share an address.
	lb = newPoolLB(t, "10.1.0.0/24")
	var owners sync.Map
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < 256; i += callers {
				st, err := lb.EnsureLoadBalancer(ctx, "c", lbService(fmt.Sprintf("ns/svc-%d", i), "", ""), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if prev, dup := owners.LoadOrStore(ingressIP(st), i); dup {
					t.Errorf("services %d and %d share %s", prev, i, ingressIP(st))
				}
			}
		}()
	}
	wg.Wait()
	checkConsistent(t, lb)
	if _, err := lb.EnsureLoadBalancer(ctx, "c", lbService("ns/one-too-many", "", ""), nil); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("257th service: %v, want ErrPoolExhausted", err)
	}

	// Restore racing with Ensure and delete (which the service controller
	// never does: it restores before its first sync) must still leave one
	// holder per address; -race checks the locking.
	lb = newPoolLB(t, "10.1.0.0/24")
	var restored []*api.Service
	for i := range 50 {
		restored = append(restored, withIngress(lbService(fmt.Sprintf("old/svc-%d", i), "", ""), fmt.Sprintf("10.1.0.%d", 2*i), 0))
	}
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				svc := lbService(fmt.Sprintf("ns/svc-%d", i), "", "")
				switch (i + c) % 4 {
				case 0:
					_ = lb.Restore(restored)
				case 1:
					_ = lb.EnsureLoadBalancerDeleted(ctx, "c", svc)
				default:
					if _, err := lb.EnsureLoadBalancer(ctx, "c", svc, nil); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	checkConsistent(t, lb)
}

func TestLocalWithoutPoolHasNoLoadBalancer(t *testing.T) {
	l, err := NewLocal(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if lb, ok := l.LoadBalancer(); ok || lb != nil {
		t.Fatalf("LoadBalancer() = %v, %v without a pool", lb, ok)
	}
	if _, ok := l.Routes(); !ok {
		t.Fatal("no routes")
	}
	if l.ProviderName() != "local" {
		t.Fatalf("ProviderName() = %q", l.ProviderName())
	}
}

func TestLocalInstances(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(Config{Zone: "rack-1", Region: "dc-1"})
	if err != nil {
		t.Fatal(err)
	}
	inst, ok := l.Instances()
	if !ok {
		t.Fatal("no instances")
	}
	addrs := []api.NodeAddress{{Type: api.NodeInternalIP, Address: "10.0.0.5"}, {Type: api.NodeHostName, Address: "n1"}}
	n := &api.Node{ObjectMeta: api.ObjectMeta{Name: "n1"}, Status: api.NodeStatus{Addresses: addrs}}
	if ok, err := inst.InstanceExists(ctx, n); !ok || err != nil {
		t.Fatalf("InstanceExists = %v, %v", ok, err)
	}
	m, err := inst.InstanceMetadata(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if m.ProviderID != "local://n1" || m.Zone != "rack-1" || m.Region != "dc-1" || len(m.NodeAddresses) != 2 || m.NodeAddresses[0] != addrs[0] {
		t.Fatalf("metadata = %+v", m)
	}
	m.NodeAddresses[0].Address = "changed"
	if addrs[0].Address != "10.0.0.5" {
		t.Fatal("metadata aliases the node's addresses")
	}

	n.Spec.ProviderID = "local://machine-7"
	n.Labels = map[string]string{LabelTopologyZone: "rack-2"}
	m, _ = inst.InstanceMetadata(ctx, n)
	if m.ProviderID != "local://machine-7" || m.Zone != "rack-2" || m.Region != "dc-1" {
		t.Fatalf("metadata of a labelled node = %+v", m)
	}
}

func TestLocalPoolSizes(t *testing.T) {
	// every address of a prefix, network and broadcast included, is handed out
	lb := newPoolLB(t, "192.168.1.240/30")
	var got []string
	for i := range 5 {
		st, err := lb.EnsureLoadBalancer(context.Background(), "c", lbService(fmt.Sprintf("a/s%d", i), "", ""), nil)
		if err != nil {
			if !errors.Is(err, ErrPoolExhausted) || i != 4 {
				t.Fatalf("service %d: %v", i, err)
			}
			break
		}
		got = append(got, ingressIP(st))
	}
	if want := "192.168.1.240 192.168.1.241 192.168.1.242 192.168.1.243"; strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
}
