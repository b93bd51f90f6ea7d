// Package fake is an in-memory runtime.Runtime for simulated (hollow)
// nodes and tests: no processes, no namespaces, just records with
// timestamps, configurable delays (image pull, container start) and
// failure injection. It passes the runtimetest conformance suite, so the
// agent cannot tell it from a real runtime.
//
// fake imports only runtime and api.
package fake
