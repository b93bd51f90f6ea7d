// Package raft holds end-to-end tests of the replicated control plane:
// three real `skiff server` processes on loopback (real Raft TCP transport,
// real bolt files), killed with SIGKILL under load, with the recorded
// history checked for linearizability by porcupine.
package raft
