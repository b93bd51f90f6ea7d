package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	comm      string
	cmdline   string // arguments joined by spaces
}

// scanProcs lists every process (those that exit while listed are
// skipped).
func scanProcs() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, fields, ok := parseStat(string(stat))
		if !ok {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppid, comm: comm,
			cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	return out
}

// parseStat splits /proc/PID/stat into the command name and the fields
// after it (fields[0] is the state, field 3 of the file).
func parseStat(s string) (comm string, fields []string, ok bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	fields = strings.Fields(s[end+1:])
	if len(fields) < 13 {
		return "", nil, false
	}
	return s[open+1 : end], fields, true
}

// usage is what a group of processes uses at one moment.
type usage struct {
	n        int
	rss, pss int64         // bytes
	cpu      time.Duration // user+system so far
	// children is the CPU time of the processes' reaped children (cutime +
	// cstime): the short-lived helpers they exec, such as the CNI plugins
	// (the agent's), runc (the shims') or a shim's start command
	// (containerd's).
	children time.Duration
}

func (u usage) add(v usage) usage {
	return usage{n: u.n + v.n, rss: u.rss + v.rss, pss: u.pss + v.pss, cpu: u.cpu + v.cpu, children: u.children + v.children}
}

// readUsage reads one process's VmRSS, Pss and CPU times (n=1), or a zero
// usage if it has exited.
func readUsage(pid int) usage {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}
	}
	_, f, ok := parseStat(string(stat))
	if !ok {
		return usage{}
	}
	ticks := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * 10 * time.Millisecond // USER_HZ is 100 on every Linux port Go supports
	}
	// fields[0] is the file's field 3: utime, stime, cutime, cstime are
	// fields 14-17.
	u := usage{n: 1, cpu: ticks(11) + ticks(12), children: ticks(13) + ticks(14)}
	u.rss = kbField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
	u.pss = kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
	return u
}

// kbField reads a "Name:   123 kB" line of a /proc file, in bytes (0 if
// missing).
func kbField(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 2 && fs[1] == "kB" {
			kb, _ := strconv.ParseInt(fs[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// group names a set of processes of the node.
type group string

// The groups whose usage the idle phase reports.
const (
	groupAgent        group = "agent"
	groupContainerd   group = "containerd"
	groupShims        group = "shims"
	groupLogDrivers   group = "log drivers"
	groupPods         group = "pods' processes"
	groupControlPlane group = "control plane"
)

var groupOrder = []group{groupAgent, groupContainerd, groupShims, groupLogDrivers, groupPods, groupControlPlane}

// nodeProcs finds the node's processes by role: the agent and control
// plane by PID, containerd as the agent's child, the shims by the
// containerd socket on their command line, the log drivers as the shims'
// children, the pods' processes by their cgroups.
func nodeProcs(agentPID, controlPlanePID int, socket, cgroupParent string) map[group][]int {
	out := map[group][]int{groupAgent: {agentPID}, groupControlPlane: {controlPlanePID}}
	all := scanProcs()
	var shims []int
	for _, p := range all {
		switch {
		case p.ppid == agentPID && p.comm == "containerd":
			out[groupContainerd] = append(out[groupContainerd], p.pid)
		case strings.Contains(p.cmdline, "containerd-shim") && strings.Contains(p.cmdline, socket):
			shims = append(shims, p.pid)
		}
	}
	out[groupShims] = shims
	for _, p := range all {
		if slices.Contains(shims, p.ppid) && strings.Contains(p.cmdline, "log-driver") {
			out[groupLogDrivers] = append(out[groupLogDrivers], p.pid)
		}
	}
	out[groupPods] = cgroupProcs(cgroupParent)
	return out
}

// snapshot is the usage of every process of some groups at one moment.
type snapshot struct {
	at     time.Time
	groups map[group][]int
	procs  map[int]usage
	busy   time.Duration // the machine's busy CPU time so far (/proc/stat)
}

func takeSnapshot(groups map[group][]int) snapshot {
	s := snapshot{at: time.Now(), groups: groups, procs: map[int]usage{}, busy: machineBusy()}
	for _, pids := range groups {
		for _, pid := range pids {
			s.procs[pid] = readUsage(pid)
		}
	}
	return s
}

// totals sums each group's usage.
func (s snapshot) totals() map[group]usage {
	out := map[group]usage{}
	for g, pids := range s.groups {
		for _, pid := range pids {
			out[g] = out[g].add(s.procs[pid])
		}
	}
	return out
}

// cpuSince is the CPU each group of s used since a, per process: a process
// not in a (started since) counts from zero.
func (s snapshot) cpuSince(a snapshot) map[group]usage {
	out := map[group]usage{}
	for g, pids := range s.groups {
		for _, pid := range pids {
			now, then := s.procs[pid], a.procs[pid]
			d := usage{n: now.n, cpu: now.cpu - then.cpu, children: now.children - then.children}
			out[g] = out[g].add(d)
		}
	}
	return out
}

// machineBusy is the CPU time every CPU of the machine spent not idle
// (user, nice, system, irq, softirq, steal) since boot.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		busy += v
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// busyPercent is how busy the machine's CPUs were between a and b, in % of
// all of them.
func busyPercent(a, b snapshot) float64 {
	wall := b.at.Sub(a.at).Seconds() * float64(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	return 100 * (b.busy - a.busy).Seconds() / wall
}
