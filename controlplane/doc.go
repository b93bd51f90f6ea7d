// Package controlplane wires one skiff server: the Raft node, the store
// (FSM, watch hub), the API server and, on the leader, the scheduler and
// the controllers. cli's `skiff server` and `skiff dev` call Run.
//
// controlplane may import api, scheduler and its own sub-packages; it must
// not import cli, client or nodeagent.
package controlplane
