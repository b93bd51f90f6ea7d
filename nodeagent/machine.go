package nodeagent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// MachineCapacity is what this machine offers pods: its CPUs, its memory
// (MemTotal of /proc/meminfo) and maxPods.
func MachineCapacity(maxPods int) (api.ResourceList, error) {
	mem, err := memTotal("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	return api.ResourceList{
		api.ResourceCPU:    api.NewQuantity(int64(goruntime.NumCPU()), api.DecimalSI),
		api.ResourceMemory: api.NewQuantity(mem, api.BinarySI),
		api.ResourcePods:   api.NewQuantity(int64(maxPods), api.DecimalSI),
	}, nil
}

// Allocatable is capacity less what the system keeps for itself: memory
// reserve (the kubelet's default eviction threshold is 100Mi; skiff keeps
// 5% of memory, at least 100Mi and at most 1Gi, for the agent, containerd
// and the kernel).
func Allocatable(capacity api.ResourceList) api.ResourceList {
	out := api.ResourceList{}
	for k, v := range capacity {
		out[k] = v
	}
	if m, ok := capacity[api.ResourceMemory]; ok {
		reserve := min(max(m.Value()/20, 100<<20), 1<<30)
		out[api.ResourceMemory] = api.NewQuantity(max(m.Value()-reserve, 0), api.BinarySI)
	}
	return out
}

func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read memory size: %s: %q: %w", path, sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	return 0, fmt.Errorf("read memory size: no MemTotal in %s", path)
}

// HostIP picks the node's InternalIP: the first global unicast IPv4
// address of an interface that is up (skipping the pod bridge), or
// 127.0.0.1 when there is none (a one-node cluster in its own network
// namespace).
func HostIP(skip ...string) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network interfaces: %w", err)
	}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || skipped[ifc.Name] || strings.HasPrefix(ifc.Name, "veth") {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4.IsGlobalUnicast() {
				return ip4.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}
