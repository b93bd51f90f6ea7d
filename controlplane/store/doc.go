// Package store is skiff's consistent object store: a deterministic state
// machine (FSM) over the objects of every kind, fed by a replicated log, with
// snapshots and a watch hub that lets watchers resume from a resourceVersion.
//
// A resourceVersion is the index of the log entry that last wrote an object.
// Several writes may share one entry (Batch): each is checked and applied on
// its own, and their events carry the same resourceVersion.
//
// The log itself is behind the Replicator interface (controlplane/raftnode
// implements it with hashicorp/raft; NewInMemory uses a local one), so this
// package imports neither Raft nor HTTP.
package store
