// Package raftnode runs one member of skiff's control-plane Raft group
// (hashicorp/raft, log and stable store in bbolt via raft-boltdb/v2, file
// snapshots, TCP transport) and implements store.Replicator over it.
//
// It is the only package that imports hashicorp/raft. It must not import
// HTTP layers (apiserver, client).
package raftnode
