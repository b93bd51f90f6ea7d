// Package proxy is the node's service proxy: it turns ClusterIP Services
// and their Endpoints into the node's datapath, either the eBPF
// socket-level load balancer (package bpf: the destination is rewritten
// once at connect, nothing per packet) or, where the kernel cannot run
// it, the userspace proxy (package proxy/userspace: VIPs made local,
// TCP splice and UDP flows). Both sit behind one Proxier interface and
// pass one test suite (proxy/proxytest).
//
// New picks the datapath (--proxy-mode auto|ebpf|userspace), logs which
// and why, and exports skiff_proxy_mode_info, the sync duration and per
// service connections, datagrams and backends.
//
// proxy imports api, bpf and its own subpackages; never the client, the
// agent or the control plane (the agent watches Services and Endpoints
// and calls Sync).
package proxy
