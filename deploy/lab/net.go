package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// netnsDir is where `ip netns` keeps its namespaces.
const netnsDir = "/run/netns"

// lanBridge is the LAN namespace's bridge, eth0 each machine's link.
const (
	lanBridge = "br0"
	machineIf = "eth0"
)

// ip runs ip(8) with args; every call names a namespace (-n) the lab
// created, or creates or deletes one: the machine's own namespace is
// never changed.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// addNetns creates a network namespace with lo up.
func addNetns(name string) error {
	if ok, _ := nsrun.IsNetNS(netnsPath(name)); ok {
		return fmt.Errorf("lab: network namespace %s already exists (another lab of this name? `skiff lab down --name ...`)", name)
	}
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	return ip("-n", name, "link", "set", "lo", "up")
}

// delNetns deletes a network namespace if it exists.
func delNetns(name string) error {
	if _, err := os.Stat(netnsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return ip("netns", "delete", name)
}

// addLAN creates the LAN namespace and its bridge.
func addLAN(ns string) error {
	if err := addNetns(ns); err != nil {
		return err
	}
	if err := ip("-n", ns, "link", "add", lanBridge, "type", "bridge"); err != nil {
		return err
	}
	return ip("-n", ns, "link", "set", lanBridge, "up")
}

// plug creates machine's namespace and its cable: eth0 with addr inside,
// the other end (named after the machine) on the LAN bridge.
func plug(lan, ns, machine string, addr netip.Prefix) error {
	if err := addNetns(ns); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", lan, "link", "add", machine, "type", "veth", "peer", "name", machineIf, "netns", ns},
		{"-n", lan, "link", "set", machine, "master", lanBridge},
		{"-n", lan, "link", "set", machine, "up"},
		{"-n", ns, "addr", "add", addr.String(), "dev", machineIf},
		{"-n", ns, "link", "set", machineIf, "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// setCable sets a machine's LAN-side veth end up or down: down, the
// machine sees NO-CARRIER on eth0 and keeps its addresses and routes, as
// with a pulled cable.
func setCable(lan, machine string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", lan, "link", "set", machine, state)
}

// sysctl sets a sysctl inside the namespace ns (never the machine's own).
func sysctl(ns, key, value string) error {
	return nsrun.Do(netnsPath(ns), func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		return os.WriteFile(path, []byte(value), 0o644)
	})
}
