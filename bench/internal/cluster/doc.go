// Package cluster starts the systems the benchmarks measure — a local skiff
// cluster and a local etcd cluster — as child processes on loopback, each
// member with its own data directory, and ends every one of them by PID.
//
// Only 127.0.0.1 addresses are ever used: ports are picked by binding
// 127.0.0.1:0. A Reaper owns every process and temporary directory it
// hands out; its Close (called on return, on error and on SIGINT/SIGTERM)
// kills what is still running and removes the directories, and each child
// also gets SIGKILL from the kernel if the benchmark itself dies.
//
// The API is HTTPS only and every request needs a credential: servers
// join with the bootstrap server's join token, and the benchmarks use the
// admin.conf the bootstrap server writes (cluster CA + admin client
// certificate), read through skiff's public client package — the one
// import of skiff's own code allowed here. Otherwise the benchmarks talk to
// the servers over their public interfaces only, as a user would.
package cluster
