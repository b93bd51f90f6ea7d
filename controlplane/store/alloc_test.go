package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func newService(name string, typ api.ServiceType, clusterIP string, nodePorts ...int32) *api.Service {
	info, _ := api.ByKind(api.KindService)
	s := info.New().(*api.Service)
	s.Namespace, s.Name = "default", name
	s.Spec.Type, s.Spec.ClusterIP = typ, clusterIP
	s.Spec.Ports = []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP}}
	for i, np := range nodePorts {
		if i == 0 {
			s.Spec.Ports[0].NodePort = np
		} else {
			s.Spec.Ports = append(s.Spec.Ports, api.ServicePort{Port: 80 + int32(i), Protocol: api.ProtocolTCP, NodePort: np})
		}
	}
	return s
}

func newNode(name, cpu, pods string) *api.Node {
	info, _ := api.ByKind(api.KindNode)
	n := info.New().(*api.Node)
	n.Name = name
	n.Status.Allocatable = api.ResourceList{}
	if cpu != "" {
		n.Status.Allocatable[api.ResourceCPU] = api.MustParseQuantity(cpu)
	}
	if pods != "" {
		n.Status.Allocatable[api.ResourcePods] = api.MustParseQuantity(pods)
	}
	return n
}

func podWithCPU(name, cpu string) *api.Pod {
	p := newPod("default", name, nil)
	p.Spec.Containers = []api.Container{{Name: "c", Image: "i", Resources: api.ResourceRequirements{
		Requests: api.ResourceList{api.ResourceCPU: api.MustParseQuantity(cpu)}}}}
	return p
}

func TestClusterIPAllocation(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	a, err := s.Create(ctx, newService("a", api.ServiceTypeClusterIP, ""))
	if err != nil {
		t.Fatal(err)
	}
	ipA := a.(*api.Service).Spec.ClusterIP
	addr, err := netip.ParseAddr(ipA)
	if err != nil || !DefaultNetwork.ServiceCIDR.Contains(addr) {
		t.Fatalf("allocated %q, not in %s", ipA, DefaultNetwork.ServiceCIDR)
	}
	if got := a.(*api.Service).Spec.ClusterIPs; len(got) != 1 || got[0] != ipA {
		t.Fatalf("clusterIPs %v", got)
	}
	// A requested IP is honoured when free, refused when taken.
	if _, err := s.Create(ctx, newService("b", api.ServiceTypeClusterIP, "10.96.0.50")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, newService("c", api.ServiceTypeClusterIP, "10.96.0.50"))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("taken IP: %v", err)
	}
	if _, err := s.Create(ctx, newService("d", api.ServiceTypeClusterIP, "192.168.0.1")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("IP outside the CIDR: %v", err)
	}
	if hl, err := s.Create(ctx, newService("headless", api.ServiceTypeClusterIP, api.ClusterIPNone)); err != nil || hl.(*api.Service).Spec.ClusterIP != api.ClusterIPNone {
		t.Fatalf("headless: %v", err)
	}
	// An update without clusterIP keeps it; deleting releases it.
	upd := api.DeepCopy(a.(*api.Service))
	upd.Spec.ClusterIP, upd.Spec.ClusterIPs = "", nil
	upd.Labels = map[string]string{"x": "y"}
	got, err := s.Update(ctx, upd)
	if err != nil || got.(*api.Service).Spec.ClusterIP != ipA {
		t.Fatalf("update lost the IP: %v %v", err, got)
	}
	s.Delete(ctx, Key{Kind: api.KindService, Namespace: "default", Name: "b"}, Preconditions{})
	if _, err := s.Create(ctx, newService("c", api.ServiceTypeClusterIP, "10.96.0.50")); err != nil {
		t.Fatalf("IP not released by delete: %v", err)
	}
}

func TestConcurrentServicesGetDistinctAddresses(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Create(ctx, newService(fmt.Sprintf("s%d", i), api.ServiceTypeNodePort, "")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	objs, _, _ := s.List(api.KindService, ListOptions{})
	ips, ports := map[string]bool{}, map[int32]bool{}
	for _, o := range objs {
		svc := o.(*api.Service)
		if ips[svc.Spec.ClusterIP] || ports[svc.Spec.Ports[0].NodePort] {
			t.Fatalf("duplicate allocation: %s %d", svc.Spec.ClusterIP, svc.Spec.Ports[0].NodePort)
		}
		ips[svc.Spec.ClusterIP], ports[svc.Spec.Ports[0].NodePort] = true, true
		if np := svc.Spec.Ports[0].NodePort; np < api.NodePortMin || np > api.NodePortMax {
			t.Fatalf("node port %d outside the range", np)
		}
	}
}

func TestNodePorts(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	if _, err := s.Create(ctx, newService("a", api.ServiceTypeNodePort, "", 30080)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, newService("b", api.ServiceTypeNodePort, "", 30080)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("taken node port: %v", err)
	}
	if _, err := s.Create(ctx, newService("c", api.ServiceTypeNodePort, "", 80)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("node port outside the range: %v", err)
	}
	if _, err := s.Create(ctx, newService("d", api.ServiceTypeNodePort, "", 30090, 30090)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the same node port twice in one service: %v", err)
	}
	ci, err := s.Create(ctx, newService("e", api.ServiceTypeClusterIP, "", 30100))
	if err != nil || ci.(*api.Service).Spec.Ports[0].NodePort != 0 {
		t.Fatalf("a ClusterIP service keeps no node port: %v %v", err, ci)
	}
}

func TestPodCIDRs(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		n, err := s.Create(ctx, newNode(fmt.Sprintf("n%d", i), "", ""))
		if err != nil {
			t.Fatal(err)
		}
		c := n.(*api.Node).Spec.PodCIDR
		p, err := netip.ParsePrefix(c)
		if err != nil || p.Bits() != 24 || !DefaultNetwork.ClusterCIDR.Contains(p.Addr()) || seen[c] {
			t.Fatalf("node n%d got pod CIDR %q", i, c)
		}
		seen[c] = true
	}
	// The plan is replicated configuration: a narrower cluster CIDR runs
	// out, and the node is stored without a CIDR.
	bad := DefaultNetwork
	bad.ClusterCIDR = netip.MustParsePrefix("10.96.0.0/16") // overlaps the service CIDR
	if err := s.SetNetwork(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("overlapping plan accepted: %v", err)
	}
	small := DefaultNetwork
	small.ClusterCIDR, small.NodeMaskSize = netip.MustParsePrefix("10.250.0.0/29"), 30
	if err := s.SetNetwork(ctx, small); err != nil {
		t.Fatal(err)
	}
	if s.Network() != small {
		t.Fatalf("network config not applied: %+v", s.Network())
	}
	var got []string
	for _, name := range []string{"x1", "x2", "x3"} {
		n, err := s.Create(ctx, newNode(name, "", ""))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n.(*api.Node).Spec.PodCIDR)
	}
	if got[0] == "" || got[1] == "" || got[0] == got[1] || got[2] != "" {
		t.Fatalf("pod CIDRs from a /29 in /30s: %q", got)
	}
}

func TestBindChecksVersionAndCapacity(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	s.Create(ctx, newNode("n1", "1", "3"))
	var pods []api.Object
	for i := 0; i < 4; i++ {
		p, err := s.Create(ctx, podWithCPU(fmt.Sprintf("p%d", i), "300m"))
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	bind := func(p api.Object, node string, rv uint64) error {
		res, err := s.Batch(ctx, []Op{{Type: OpBind, Key: KeyOf(p), Node: node, Preconditions: Preconditions{ResourceVersion: rv}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Err
	}
	rvOf := func(p api.Object) uint64 { v, _ := parseRV(p.GetObjectMeta().ResourceVersion); return v }

	if err := bind(pods[0], "n1", rvOf(pods[0])); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(KeyOf(pods[0]))
	gp := got.(*api.Pod)
	if gp.Spec.NodeName != "n1" || len(gp.Status.Conditions) != 1 || gp.Status.Conditions[0].Type != api.PodScheduled {
		t.Fatalf("bound pod: %+v %+v", gp.Spec.NodeName, gp.Status.Conditions)
	}
	if err := bind(pods[1], "n1", rvOf(pods[1])-1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale resourceVersion: %v", err)
	}
	if err := bind(pods[0], "n2", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("rebinding to another node: %v", err)
	}
	if err := bind(pods[1], "nowhere", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing node: %v", err)
	}
	// 1 CPU: three pods of 300m fit, the fourth does not.
	if err := bind(pods[1], "n1", 0); err != nil {
		t.Fatal(err)
	}
	if err := bind(pods[2], "n1", 0); err != nil {
		t.Fatal(err)
	}
	if err := bind(pods[3], "n1", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("overcommit: %v", err)
	}
	if u := s.NodeUsage("n1"); u.CPUMilli != 900 || u.Pods != 3 {
		t.Fatalf("usage %+v", u)
	}
	// A bound pod being deleted gracefully still holds its share: its
	// node may still run it.
	if d, err := s.Delete(ctx, KeyOf(pods[0]), Preconditions{}); err != nil || d.GetObjectMeta().DeletionTimestamp == nil {
		t.Fatalf("graceful delete: %v, deletionTimestamp %v", err, d)
	}
	if err := bind(pods[3], "n1", 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("bound while the deleted pod may still run: %v", err)
	}
	// Deleting it for good (its node's delete, grace 0) frees its share.
	forceDelete(t, s, KeyOf(pods[0]))
	if err := bind(pods[3], "n1", 0); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

// Two schedulers racing to fill a node never overcommit it: every binding
// is checked inside the log.
func TestRacingBindersNeverOvercommit(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	s.Create(ctx, newNode("n1", "2", ""))
	var pods []api.Object
	for i := 0; i < 40; i++ {
		p, _ := s.Create(ctx, podWithCPU(fmt.Sprintf("p%d", i), "100m"))
		pods = append(pods, p)
	}
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ops []Op
			for _, p := range pods {
				ops = append(ops, Op{Type: OpBind, Key: KeyOf(p), Node: "n1"})
			}
			s.Batch(ctx, ops)
		}()
	}
	wg.Wait()
	if u := s.NodeUsage("n1"); u.CPUMilli > 2000 || u.Pods != 20 {
		t.Fatalf("node usage after the race: %+v (allocatable 2 CPU)", u)
	}
}
