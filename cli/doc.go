// Package cli holds skiff's cobra commands: the kubectl-like client
// commands (apply, get, describe, delete, members, version) and the
// commands that run a server (server, dev). cmd/skiff only builds the root
// command from NewRoot and runs it.
//
// cli may import client, api and controlplane (to run a server); nothing
// imports cli.
package cli
