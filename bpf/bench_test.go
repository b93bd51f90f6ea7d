package bpf

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// Service programming: the time to add one service when n exist, through
// Sync (the full desired set, as a resync does) and through Upsert (the
// incremental form), into the real maps. The extra service is removed
// outside the timer after each add, so every iteration adds to n.
//
//	go test -run '^$' -bench 'Programming' -benchtime 2000x ./bpf
func BenchmarkProgramming(b *testing.B) {
	for _, n := range []int{1000, 10000, 20000} {
		e := newEnv(b)
		bes := []Backend{
			{netip.MustParseAddr("10.0.0.1"), 8080},
			{netip.MustParseAddr("10.0.0.2"), 8080},
			{netip.MustParseAddr("10.0.0.3"), 8080},
		}
		services := manyServices(n, bes)
		for i := range services {
			services[i].Backends = bes // three backends each, like the HTTP benchmark's service
		}
		e.sync(services...)
		extra := Service{VIP: netip.MustParseAddr("10.127.255.254"), Port: 80, Protocol: TCP, Backends: bes}
		withExtra := append(services[:n:n], extra)

		b.Run(fmt.Sprintf("Sync/services=%d", n), func(b *testing.B) {
			for b.Loop() {
				if st, err := e.dp.Sync(withExtra); err != nil || st.Added != 1 {
					b.Fatalf("Sync: %+v, %v", st, err)
				}
				b.StopTimer()
				if _, err := e.dp.Remove(extra.Key()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("Upsert/services=%d", n), func(b *testing.B) {
			for b.Loop() {
				if st, err := e.dp.Upsert(extra); err != nil || st.Added != 1 {
					b.Fatalf("Upsert: %+v, %v", st, err)
				}
				b.StopTimer()
				if _, err := e.dp.Remove(extra.Key()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("UpsertBackendChange/services=%d", n), func(b *testing.B) {
			changed := services[n/2]
			for i := 0; b.Loop(); i++ {
				changed.Backends = bes[i%2 : 2+i%2] // one backend out, one in
				if st, err := e.dp.Upsert(changed); err != nil || st.Updated != 1 {
					b.Fatalf("Upsert: %+v, %v", st, err)
				}
			}
		})
	}
}

// connect() with the rewrite (to the VIP) against connect() straight to a
// backend, from the client process in the test cgroup and netns (where the
// programs run for both: a direct connect pays the service lookup that
// misses). Each iteration is one round of perRound connects per kind,
// alternating, so drift hits both; reported as the client thread's CPU ns
// per connect (the program runs inside connect()).
//
//	go test -run '^$' -bench 'Connect' -benchtime 10x ./bpf
func BenchmarkConnect(b *testing.B) {
	const perRound = 2000
	e := newEnv(b)
	bes := e.backends(8080, backendAddrs...)
	e.sync(Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: TCP, Backends: bes},
		Service{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: UDP, Backends: bes})
	c := e.client()
	var tcpVIP, tcpDirect, udpVIP, udpDirect time.Duration
	round := func(addr string) (tcp, udp time.Duration) {
		resp := c.do(request{Op: "connbench", Addr: addr, N: perRound})
		t, _ := strconv.ParseInt(resp.Backends[0], 10, 64)
		u, _ := strconv.ParseInt(resp.Backends[1], 10, 64)
		return time.Duration(t), time.Duration(u)
	}
	rounds := 0
	for b.Loop() {
		t1, u1 := round("10.96.0.10:80")
		t2, u2 := round("10.0.0.1:8080")
		tcpVIP += t1
		udpVIP += u1
		tcpDirect += t2
		udpDirect += u2
		rounds++
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(rounds) }
	b.ReportMetric(per(tcpVIP), "tcp-vip-cpu-ns/connect")
	b.ReportMetric(per(tcpDirect), "tcp-direct-cpu-ns/connect")
	b.ReportMetric(float64(tcpDirect)/float64(tcpVIP), "tcp-direct/vip")
	b.ReportMetric(per(udpVIP), "udp-vip-cpu-ns/connect")
	b.ReportMetric(per(udpDirect), "udp-direct-cpu-ns/connect")
	b.ReportMetric(float64(udpDirect)/float64(udpVIP), "udp-direct/vip")
	b.ReportMetric(0, "ns/op")
}

// Reading the counters of every service (a metrics scrape).
//
//	go test -run '^$' -bench 'Counters' -benchtime 20x ./bpf
func BenchmarkCounters(b *testing.B) {
	e := newEnv(b)
	bes := []Backend{{netip.MustParseAddr("10.0.0.1"), 8080}}
	e.sync(manyServices(20000, bes)...)
	for b.Loop() {
		c, err := e.dp.Counters()
		if err != nil || len(c) != 20000 {
			b.Fatalf("Counters: %d, %v", len(c), err)
		}
	}
}
