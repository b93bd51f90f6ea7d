package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/datapath:", err)
	if theEnv != nil {
		theEnv.close()
	}
	os.Exit(1)
}

var theEnv *env

func main() {
	runRole() // a child process: runs its role and exits

	var (
		duration  = flag.Duration("duration", 10*time.Second, "measured window of each short-connection run")
		warmup    = flag.Duration("warmup", 2*time.Second, "warm-up before each window")
		workers   = flag.Int("workers", 16, "concurrent connections of the load generator")
		rounds    = flag.Int("rounds", 1, "rounds over the modes (interleaved)")
		bulkDur   = flag.Duration("bulk-duration", 5*time.Second, "measured window of each bulk run")
		sizes     = flag.String("programming", "1000,10000,20000", "service counts for the programming measurement")
		only      = flag.String("only", "short,bulk,programming", "which parts to run")
		modeList  = flag.String("modes", "direct,ebpf,userspace,haproxy,iptables", "modes for short and bulk")
		upserts   = flag.Int("upserts", 1000, "eBPF Upserts timed per size")
		syncs     = flag.Int("syncs", 10, "eBPF Syncs timed per size")
		nftDeltas = flag.Int("nft-deltas", 5, "nft -f deltas timed per size")
		iptDeltas = flag.Int("ipt-deltas", 3, "iptables-restore deltas timed per size")
		nftMax    = flag.Int("nft-max", 10000, "largest service count loaded into nftables (loading grows faster than quadratically: ~2 min at 10,000 here)")
	)
	flag.StringVar(&userspaceProfile, "cpuprofile-userspace", "", "write the userspace proxier's CPU profile to this file")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal(fmt.Errorf("run as root: the benchmark creates a network namespace, a cgroup and loads BPF programs"))
	}
	for _, tool := range []string{"ip", "sysctl", "haproxy", "iptables-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatal(fmt.Errorf("%s is missing: apt-get install -y iproute2 procps haproxy iptables nftables", tool))
		}
	}
	parts := set(*only)
	e, err := newEnv()
	if err != nil {
		fatal(err)
	}
	theEnv = e
	defer e.close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "\n%v: removing the namespace, cgroup and processes of this run\n", s)
		e.close()
		os.Exit(130)
	}()
	if err := e.setup(); err != nil {
		fatal(err)
	}
	printMachine()

	if parts["short"] || parts["bulk"] {
		be, stdout, _, err := e.start("backends", backendsArgs{Addrs: backendAddrs, HTTPPort: httpPort, BulkPort: bulkPort}, false)
		if err != nil {
			fatal(err)
		}
		if err := readyLine(be, stdout); err != nil {
			fatal(err)
		}
		var chosen []mode
		want := set(*modeList)
		for _, m := range modes {
			if want[m.name] {
				chosen = append(chosen, m)
			}
		}
		if parts["short"] {
			runShort(e, chosen, *rounds, be.cmd.Process.Pid, loadArgs{Workers: *workers, Warmup: *warmup, Duration: *duration})
		}
		if parts["bulk"] {
			runBulk(e, chosen, *rounds, bulkArgs{Warmup: time.Second, Duration: *bulkDur})
		}
	}
	if parts["programming"] {
		var ns []int
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				fatal(fmt.Errorf("-programming: %w", err))
			}
			ns = append(ns, n)
		}
		runProgramming(e, ns, *upserts, *syncs, *nftDeltas, *iptDeltas, *nftMax)
	}
}

func set(list string) map[string]bool {
	out := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		out[strings.TrimSpace(s)] = true
	}
	return out
}

func printMachine() {
	load, _ := os.ReadFile("/proc/loadavg")
	uname, _ := exec.Command("uname", "-sr").Output()
	hv, _ := exec.Command("haproxy", "-v").Output()
	iv, _ := exec.Command("iptables", "--version").Output()
	nv, _ := exec.Command("nft", "--version").Output()
	fmt.Printf("machine: %d CPUs, %s, load %s\n", runtime.NumCPU(), strings.TrimSpace(string(uname)), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("tools: %s; %s; %s; %s\n", firstLine(hv), strings.TrimSpace(string(iv)), strings.TrimSpace(string(nv)), runtime.Version())
}

func firstLine(b []byte) string { return strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0] }

// runChild runs a load or bulk child in the client cgroup and decodes its
// result. Once warm-up has passed it samples the CPU time of the
// processes in watch, and again when the child is done; it returns the
// CPU time they used in between.
func runChild(e *env, role string, args any, warmup time.Duration, watch []int, out any) ([]time.Duration, error) {
	c, stdout, _, err := e.start(role, args, true)
	if err != nil {
		return nil, err
	}
	before := make([]time.Duration, len(watch))
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		select {
		case <-time.After(warmup):
		case <-c.exited:
		}
		for i, pid := range watch {
			before[i] = procCPU(pid)
		}
	}()
	data, _ := io.ReadAll(stdout)
	<-c.exited
	<-sampled
	used := make([]time.Duration, len(watch))
	for i, pid := range watch {
		used[i] = procCPU(pid) - before[i]
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", role, err, c.out.String())
	}
	return used, nil
}

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start at ") ".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

type shortRow struct {
	rates    []float64 // per round
	rate     float64
	p50, p99 time.Duration
	errors   int
	firstErr string
	runs     int
	requests int
	cpuLoad  time.Duration // load generator, in its window
	cpuBack  time.Duration // backends
	cpuProxy time.Duration // proxy process (userspace, haproxy)
}

func runShort(e *env, chosen []mode, rounds int, backends int, args loadArgs) {
	fmt.Printf("\nShort connections: HTTP/1.1, a new TCP connection per request, %d workers, %v window after %v warm-up, %d round(s); load generator in the namespace (tcp_tw_reuse=1 there) and in the eBPF cgroup\n",
		args.Workers, args.Duration, args.Warmup, rounds)
	rows := map[string]*shortRow{}
	for r := range rounds {
		for _, m := range rotate(chosen, r) {
			run, err := m.up(e)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", m.name, err))
			}
			a := args
			a.Targets = run.targets
			watch := []int{backends}
			if run.pid != 0 {
				watch = append(watch, run.pid)
			}
			var res loadResult
			used, err := runChild(e, "load", a, a.Warmup, watch, &res)
			run.down()
			if err != nil {
				fatal(fmt.Errorf("%s: %w", m.name, err))
			}
			row := rows[m.name]
			if row == nil {
				row = &shortRow{}
				rows[m.name] = row
			}
			rate := float64(res.Requests) / res.Seconds
			row.rates = append(row.rates, rate)
			row.rate += rate
			row.p50 += res.P50
			row.p99 += res.P99
			row.errors += res.Errors
			if row.firstErr == "" {
				row.firstErr = res.FirstErr
			}
			row.runs++
			row.requests += res.Requests
			row.cpuLoad += res.CPU
			row.cpuBack += used[0]
			if len(used) > 1 {
				row.cpuProxy += used[1]
			}
			fmt.Printf("  round %d %-10s %8.0f req/s  p50 %v  p99 %v  errors %d %s\n", r+1, m.name, rate, res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Errors, res.FirstErr)
		}
	}
	fmt.Printf("\n  %-10s %8s %9s %9s %7s %9s %9s %24s\n", "mode", "req/s", "p50", "p99", "errors", "/ direct", "(rounds)", "CPU µs/req load|back|proxy")
	avg := map[string]float64{}
	perRound := map[string][]float64{}
	for _, m := range chosen {
		row := rows[m.name]
		avg[m.name] = row.rate / float64(row.runs)
		perRound[m.name] = row.rates
	}
	for _, m := range chosen {
		row := rows[m.name]
		cpu := fmt.Sprintf("%s | %s | %s", perReq(row.cpuLoad, row.requests), perReq(row.cpuBack, row.requests), perReq(row.cpuProxy, row.requests))
		fmt.Printf("  %-10s %8.0f %9v %9v %7d %9s %9s %24s\n", m.name, avg[m.name],
			(row.p50 / time.Duration(row.runs)).Round(time.Microsecond), (row.p99 / time.Duration(row.runs)).Round(time.Microsecond),
			row.errors, ratio(avg[m.name], avg["direct"]), medianRatio(perRound[m.name], perRound["direct"]), cpu)
	}
	fmt.Println()
	fmt.Println("  ratios: median of the per-round ratios (pooled in parentheses)")
	line := func(name, a, b, target string) {
		fmt.Printf("  %-20s = %s (%s)%s\n", name, medianRatio(perRound[a], perRound[b]), ratio(avg[a], avg[b]), target)
	}
	line("ebpf / direct", "ebpf", "direct", "  target >= 0.97")
	line("userspace / haproxy", "userspace", "haproxy", "  target >= 1.0")
	line("userspace / direct", "userspace", "direct", "  target >= 0.6")
	line("haproxy / direct", "haproxy", "direct", "")
	line("iptables / direct", "iptables", "direct", "")
}

// medianRatio is the median over rounds of a[r]/b[r] ("-" without data).
func medianRatio(a, b []float64) string {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	slices.Sort(rs)
	m := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		m = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return fmt.Sprintf("%.2f", m)
}

// perReq is CPU time per request in µs ("-" for none).
func perReq(d time.Duration, n int) string {
	if d == 0 || n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(d.Nanoseconds())/float64(n)/1e3)
}

// rotate starts round r's order of modes at its r-th mode, so drift in
// the machine's load does not always hit the same mode.
func rotate(ms []mode, r int) []mode {
	k := r % len(ms)
	return append(append([]mode(nil), ms[k:]...), ms[:k]...)
}

// ms formats a duration for the programming table ("-": not measured).
func ms(d, round time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(round).String()
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func runBulk(e *env, chosen []mode, rounds int, args bulkArgs) {
	fmt.Printf("\nBulk: one long-lived TCP connection, backend sends, client reads, %v window after %v warm-up, %d round(s)\n", args.Duration, args.Warmup, rounds)
	sum := map[string]float64{}
	perRound := map[string][]float64{}
	for r := range rounds {
		for _, m := range rotate(chosen, r) {
			run, err := m.up(e)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", m.name, err))
			}
			a := args
			a.Target = run.bulk
			var res bulkResult
			_, err = runChild(e, "bulk", a, 0, nil, &res)
			run.down()
			if err != nil {
				fatal(fmt.Errorf("%s: %w", m.name, err))
			}
			gbps := float64(res.Bytes) * 8 / res.Seconds / 1e9
			sum[m.name] += gbps
			perRound[m.name] = append(perRound[m.name], gbps)
			fmt.Printf("  round %d %-10s %6.2f Gbit/s\n", r+1, m.name, gbps)
		}
	}
	avg := map[string]float64{}
	fmt.Printf("\n  %-10s %10s %10s %10s\n", "mode", "Gbit/s", "/ direct", "(rounds)")
	for _, m := range chosen {
		avg[m.name] = sum[m.name] / float64(rounds)
		fmt.Printf("  %-10s %10.2f %10s %10s\n", m.name, avg[m.name], ratio(avg[m.name], avg["direct"]), medianRatio(perRound[m.name], perRound["direct"]))
	}
	fmt.Println()
	fmt.Println("  ratios: median of the per-round ratios (pooled in parentheses)")
	line := func(name, a, b, target string) {
		fmt.Printf("  %-20s = %s (%s)%s\n", name, medianRatio(perRound[a], perRound[b]), ratio(avg[a], avg[b]), target)
	}
	line("ebpf / direct", "ebpf", "direct", "  target >= 0.99")
	line("userspace / haproxy", "userspace", "haproxy", "")
	line("iptables / direct", "iptables", "direct", "")
}

func runProgramming(e *env, sizes []int, upserts, syncs, nftDeltas, iptDeltas, nftMax int) {
	fmt.Printf("\nService programming: time to add one service (TCP, 3 backends) when N exist (median; eBPF Upsert also p99)\n")
	fmt.Printf("  eBPF Upsert: the loader's incremental change (%d timed); eBPF Sync: the full set + 1, diffed by the loader (%d timed);\n", upserts, syncs)
	fmt.Printf("  Proxier.Update: one service's API objects through nodeagent/proxy (what the agent pays per watch event; also p99);\n")
	fmt.Printf("  Proxier.Sync: API objects + 1 through nodeagent/proxy (what the agent pays after a list); nft -f: kube-proxy nftables delta (%d timed);\n", nftDeltas)
	fmt.Printf("  iptables-restore --noflush: kube-proxy iptables partial sync (KUBE-SERVICES rewritten + the new chains, %d timed). All nft/iptables in the bench namespace.\n\n", iptDeltas)
	fmt.Printf("  %7s %12s %12s %12s %14s %14s %14s %12s %12s %14s %14s %16s %16s\n", "N", "ebpf upsert", "upsert p99", "ebpf Sync", "Proxier.Update", "Update p99", "Proxier.Sync", "nft delta", "nft full", "iptables delta", "iptables full", "nft delta/upsert", "nft delta/Update")
	for _, n := range sizes {
		r := programmingResult{N: n}
		if err := measureEBPF(e, &r, upserts, syncs); err != nil {
			r.Err = append(r.Err, "ebpf: "+err.Error())
		}
		if n <= nftMax {
			if err := measureNFT(e, &r, nftDeltas); err != nil {
				r.Err = append(r.Err, "nft: "+err.Error())
			}
		} else {
			r.Err = append(r.Err, fmt.Sprintf("nft: not measured above -nft-max=%d (kube-proxy's per-service anonymous vmaps make the kernel search every set for a free name: loading N services grows faster than N squared)", nftMax))
		}
		if err := measureIPTables(e, &r, iptDeltas); err != nil {
			r.Err = append(r.Err, "iptables: "+err.Error())
		}
		x, xu := "-", "-"
		if r.Upsert > 0 && r.NFT > 0 {
			x = fmt.Sprintf("%.0fx", float64(r.NFT)/float64(r.Upsert))
		}
		if r.ProxierUpdate > 0 && r.NFT > 0 {
			xu = fmt.Sprintf("%.0fx", float64(r.NFT)/float64(r.ProxierUpdate))
		}
		fmt.Printf("  %7d %12s %12s %12s %14s %14s %14s %12s %12s %14s %14s %16s %16s\n", n,
			ms(r.Upsert, 100*time.Nanosecond), ms(r.UpsertP99, 100*time.Nanosecond), ms(r.BPFSync, time.Microsecond),
			ms(r.ProxierUpdate, 100*time.Nanosecond), ms(r.ProxierUpdateP99, 100*time.Nanosecond), ms(r.ProxierSync, time.Microsecond),
			ms(r.NFT, time.Millisecond), ms(r.NFTFull, time.Millisecond), ms(r.IPT, time.Millisecond), ms(r.IPTFull, time.Millisecond), x, xu)
		for _, s := range r.Err {
			fmt.Printf("    error: %s\n", s)
		}
	}
}
