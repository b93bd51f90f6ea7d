// Package netnstest gives privileged network tests the namespaces they
// work in: it checks the prerequisites (root, the ip tool), creates named
// network namespaces (skiff-test-net-<pid>-<n>) that t.Cleanup deletes,
// and removes those a crashed run left behind (their creator's PID is
// gone). Tests never touch the machine's own namespace: everything they
// configure lives in namespaces made here.
//
// Without root a test is skipped with the reason; with
// SKIFF_REQUIRE_INTEGRATION=1 (CI) it fails instead.
//
// netnstest is for tests only; it imports the standard library and nsrun.
package netnstest
