// Package load drives closed-loop load: N workers each issue one operation,
// wait for its answer and issue the next, and the package reports the
// throughput and latency percentiles of the operations that completed in
// the measured window (after a warm-up).
//
// It knows nothing of what an operation does; the benchmark programs pass
// a function that writes to skiff or to etcd.
package load
