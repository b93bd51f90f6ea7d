// Package bpf holds skiff's eBPF programs (C sources next to the Go that
// loads them, compiled with bpf2go, generated objects committed so that
// `go build` needs no clang) and the loader that owns pinning under bpffs,
// map reconciliation for services and backends, and per-service counters.
//
// bpf imports nothing of skiff but api; only nodeagent imports it.
// Regenerate the objects with `make generate`.
//
// Status: not implemented yet.
package bpf
