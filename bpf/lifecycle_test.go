package bpf

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// manyServices returns n TCP services 10.96.x.y:80, service i on backend i%3.
func manyServices(n int, bes []Backend) []Service {
	out := make([]Service, n)
	for i := range n {
		vip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
		out[i] = Service{VIP: vip, Port: 80, Protocol: TCP, Backends: []Backend{bes[i%len(bes)]}}
	}
	return out
}

func TestTenThousandServices(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	services := manyServices(10000, bes)
	start := time.Now()
	st := e.sync(services...)
	t.Logf("programmed 10,000 services in %v", time.Since(start))
	if st.Added != 10000 {
		t.Fatalf("stats %+v, want 10000 added", st)
	}
	start = time.Now()
	if st := e.sync(services...); st != (SyncStats{}) {
		t.Errorf("second Sync of the same set changed %+v", st)
	}
	t.Logf("unchanged Sync of 10,000 services: %v", time.Since(start))

	c := e.client()
	for _, i := range append([]int{0, 9999}, rand.Perm(10000)[:20]...) {
		addr := netip.AddrPortFrom(services[i].VIP, 80).String()
		resp := c.do(request{Op: "tcp", Addr: addr, N: 1})
		if resp.Errs[0] != "" || resp.Backends[0] != bes[i%3].String() || resp.Peers[0] != addr {
			t.Errorf("service %d (%s): backend %q peer %q err %q, want %s", i, addr, resp.Backends[0], resp.Peers[0], resp.Errs[0], bes[i%3])
		}
	}
	// Every service in the maps as written.
	var n int
	var k lbSvcKey
	var v lbSvcValue
	it := e.dp.objs.SkiffServices.Iterate()
	for it.Next(&k, &v) {
		n++
		if v.Count != 1 {
			t.Fatalf("%s: count %d", serviceKeyOf(k), v.Count)
		}
	}
	if n != 10000 {
		t.Errorf("services map holds %d entries, want 10000", n)
	}
	// Down to half: the rest is removed, the half left untouched.
	if st := e.sync(services[:5000]...); st.Removed != 5000 || st.Added+st.Updated != 0 {
		t.Errorf("stats %+v, want 5000 removed", st)
	}
}

// While backends flip between two sets, every connection lands on a
// backend of one of them: no lookup sees a half-written service.
func TestNoHalfWrittenService(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	setA := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes[:1]}
	setB := setA
	setB.Backends = bes[1:]
	e.sync(setA)
	c := e.client()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var flips int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := setA
			if i%2 == 0 {
				s = setB
			}
			if _, err := e.dp.Sync([]Service{s}); err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
			flips++
		}
	}()
	resp := c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 300})
	close(stop)
	wg.Wait()
	seen := checkAll(t, "connection", resp, "10.96.0.10:80")
	t.Logf("%d flips during 300 connections: %v", flips, seen)
	if len(seen) < 2 {
		t.Errorf("connections saw %v; the flips did not interleave", seen)
	}
}

// The pinned datapath forwards while no process holds it, and a new Open
// takes it over: same links (the program replaced in place), the services
// read back, counters kept.
func TestRestartKeepsForwarding(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes, AffinityTimeout: 3 * time.Hour}
	udp := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 53, Protocol: UDP, Backends: bes[1:]}
	e.sync(svc, udp)
	c := e.client()
	checkAll(t, "hold", c.do(request{Op: "hold", Name: "long", Addr: "10.96.0.10:80"}), "10.96.0.10:80")
	linkIDs := pinnedLinks(t, e.cfg.PinDir)

	if err := e.dp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Nobody holds the datapath: it goes on.
	checkAll(t, "connection while closed", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 10}), "10.96.0.10:80")
	checkAll(t, "datagram while closed", c.do(request{Op: "udp", Addr: "10.96.0.10:53", N: 5}), "10.96.0.10:53")
	checkAll(t, "held connection", c.do(request{Op: "ping", Name: "long"}), "10.96.0.10:80")

	e.open()
	after := pinnedLinks(t, e.cfg.PinDir)
	for name, id := range linkIDs {
		if after[name].link != id.link {
			t.Errorf("%s: link %d replaced by %d, want the pinned one reused", name, id.link, after[name].link)
		}
		if after[name].prog == id.prog {
			t.Errorf("%s: still runs program %d, want the new one (Link.Update)", name, id.prog)
		}
	}
	if st := e.sync(svc, udp); st != (SyncStats{}) {
		t.Errorf("Sync of the same services after re-open changed %+v; want them read back", st)
	}
	cnt, err := e.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt[svc.Key()].Connections != 11 || cnt[udp.Key()].Datagrams != 5 {
		t.Errorf("counters after re-open: %v, want 11 connections and 5 datagrams kept", cnt)
	}
	checkAll(t, "held connection", c.do(request{Op: "ping", Name: "long"}), "10.96.0.10:80")
	svc.Backends = bes[2:]
	if st := e.sync(svc, udp); st.Updated != 1 {
		t.Errorf("stats %+v, want 1 updated", st)
	}
	seen := checkAll(t, "connection", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 10}), "10.96.0.10:80")
	if len(seen) != 1 || seen[bes[2].String()] != 10 {
		t.Errorf("after the update through the re-opened datapath: %v", seen)
	}
}

type linkID struct {
	link link.ID
	prog ebpf.ProgramID
}

func pinnedLinks(t *testing.T, dir string) map[string]linkID {
	t.Helper()
	out := map[string]linkID{}
	for _, a := range attachments {
		l, err := link.LoadPinnedLink(dir+"/"+a.name, nil)
		if err != nil {
			t.Fatalf("pinned link %s: %v", a.name, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[a.name] = linkID{info.ID, info.Program}
	}
	return out
}

func TestCleanupRemovesEverything(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	e.sync(Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes})
	c := e.client()
	checkAll(t, "before", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 1}), "")
	e.dp.Close()

	if err := Cleanup(e.cfg); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := os.Stat(e.cfg.PinDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin directory after Cleanup: %v", err)
	}
	cg, err := os.Open(e.cfg.CgroupPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	for _, a := range attachments {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: a.attach})
		if err != nil {
			t.Fatalf("query %s: %v", a.name, err)
		}
		if len(res.Programs) != 0 {
			t.Errorf("%s: %d programs still attached", a.name, len(res.Programs))
		}
	}
	resp := c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 1})
	if !strings.Contains(resp.Errs[0], "unreachable") {
		t.Errorf("after Cleanup a connection to the VIP: %q, want network unreachable (untranslated)", resp.Errs[0])
	}
	if err := Cleanup(e.cfg); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

func TestOpenMovesToAnotherCgroup(t *testing.T) {
	e := newEnv(t)
	other, _ := testCgroup(t)
	e.dp.Close()
	moved := e.cfg
	moved.CgroupPath = other
	dp, err := Open(moved)
	if err != nil {
		t.Fatalf("Open on another cgroup: %v", err)
	}
	defer dp.Close()
	for path, want := range map[string]int{e.cfg.CgroupPath: 0, other: 1} {
		cg, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: ebpf.AttachCGroupInet4Connect})
		cg.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Programs) != want {
			t.Errorf("%s: %d connect4 programs, want %d", path, len(res.Programs), want)
		}
	}
}

// Loaders come and go (Close, Open: the links' programs replaced in place)
// while the client connects without pause: no connection fails.
func TestTakeoverUnderTraffic(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes}
	e.sync(svc)
	c := e.client()

	const want = 3
	var takeovers atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.dp.Close(); err != nil {
				t.Errorf("Close: %v", err)
				return
			}
			dp, err := Open(e.cfg)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			e.dp = dp
			takeovers.Add(1)
		}
	}()
	seen := map[string]int{}
	connections := 0
	deadline := time.Now().Add(time.Minute)
	for takeovers.Load() < want && time.Now().Before(deadline) {
		for b, n := range checkAll(t, "connection", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 50}), "10.96.0.10:80") {
			seen[b] += n
		}
		connections += 50
	}
	close(stop)
	<-done
	t.Cleanup(func() { e.dp.Close() })
	t.Logf("%d takeovers during %d connections: %v", takeovers.Load(), connections, seen)
	if takeovers.Load() < want {
		t.Errorf("only %d takeovers happened in a minute of connections", takeovers.Load())
	}
}

// A loader that died mid-write leaves slots and members without an owner,
// or a service whose active slots are incomplete: Open removes the first
// and the next Sync rewrites the second.
func TestRestoreRepairsLeftovers(t *testing.T) {
	e := newEnv(t)
	bes := e.backends(8080, backendAddrs...)
	svc := Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes, AffinityTimeout: time.Minute}
	e.sync(svc)
	p := e.dp.lookup(svc.Key())
	m := e.dp.objs
	// An orphan slot and member (id 999 has no service), a member of a
	// backend the service does not have, and a missing active slot.
	orphanSlot := lbBackendKey{Id: 999, Index: 0, Gen: 0}
	orphanMember := lbMemberKey{Id: 999, Addr: addrKey(bes[0].Addr), Port: portKey(8080)}
	strayMember := lbMemberKey{Id: p.id, Addr: addrKey(netip.MustParseAddr("10.0.0.99")), Port: portKey(8080)}
	for _, err := range []error{
		m.SkiffBackends.Put(orphanSlot, backendValueOf(bes[0])),
		m.SkiffMembers.Put(orphanMember, uint8(1)),
		m.SkiffMembers.Put(strayMember, uint8(1)),
		m.SkiffBackends.Delete(lbBackendKey{Id: p.id, Index: 1, Gen: p.gen}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.dp.Close()
	e.open()
	for name, err := range map[string]error{
		"orphan slot":   lookupErr(e.dp.objs.SkiffBackends, orphanSlot),
		"orphan member": lookupErr(e.dp.objs.SkiffMembers, orphanMember),
		"stray member":  lookupErr(e.dp.objs.SkiffMembers, strayMember),
	} {
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("%s after Open: %v, want removed", name, err)
		}
	}
	if st := e.sync(svc); st.Updated != 1 {
		t.Errorf("Sync after an incomplete write: %+v, want the service rewritten", st)
	}
	if got := mapState(t, e.dp)[svc.Key()]; !slices.Equal(got, bes) {
		t.Errorf("maps hold %v, want %v", got, bes)
	}
	c := e.client()
	seen := checkAll(t, "connection", c.do(request{Op: "tcp", Addr: "10.96.0.10:80", N: 5}), "10.96.0.10:80")
	if len(seen) != 1 {
		t.Errorf("affinity after repair: %v", seen)
	}
}

// lookupErr is ErrKeyNotExist when m has no key (LookupBytes says so with
// a nil value).
func lookupErr(m *ebpf.Map, key any) error {
	b, err := m.LookupBytes(key)
	if err == nil && b == nil {
		return ebpf.ErrKeyNotExist
	}
	return err
}
