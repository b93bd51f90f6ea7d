// Package cni implements network.Network with CNI: libcni
// (github.com/containernetworking/cni) running the standard bridge,
// host-local and loopback plugins (Debian's containernetworking-plugins,
// /usr/lib/cni) over the node's pod CIDR.
//
// The network is one conflist named "skiff": a Linux bridge (default
// skiff0) that holds the pod CIDR's first address as the pods' gateway,
// host-local IPAM whose allocations live under the agent's state dir (so
// two nodes on one machine never share them), and loopback to bring up
// each sandbox's lo. Pod egress masquerade is off unless Config.IPMasq
// asks for it.
//
// The bridge lives in the network namespace the plugins run in: the
// agent process's own by default, or Config.NetNS (the plugins are then
// started from a thread inside it, see nsrun). State that must survive
// an agent restart is on disk: libcni's result cache says which sandbox
// is attached where, host-local's files say which address is whose.
//
// cni imports network, nsrun, runtime (sandbox IDs), libcni and
// client_golang; never the agent, the client or the control plane.
package cni
