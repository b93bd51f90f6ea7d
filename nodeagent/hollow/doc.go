// Package hollow runs simulated ("hollow") nodes in one process, as
// Kubernetes' kubemark does: each is the real agent (nodeagent.Agent) with
// its own key, certificate and connections, over a fake runtime instead of
// containerd. The control plane cannot tell them from real nodes, so the
// scheduler, controllers and API are exercised at thousands of nodes on
// one machine (skiff agent --simulate N).
//
// Joining is pipelined with bounded concurrency: the CA is pinned once,
// then each node generates an ECDSA P-256 key, gets its CSR signed with the
// agent token, and registers its Node.
//
// hollow imports nodeagent, its fake runtime, client and api; never
// controlplane.
package hollow
