// Package proxytest is the shared test suite every proxy.Proxier must
// pass (Run), and the privileged environment it runs in, reusable by
// other tests (the agent's):
//
//   - Env: a network namespace the test created (netnstest) holding the
//     backends, the clients and the VIPs, and optionally a cgroup v2
//     directory under /sys/fs/cgroup/unified (skiff-test-proxy-<pid>-<n>)
//     that an eBPF datapath attaches to and the clients run in;
//   - BPFFS: a private bpffs mount for a test's pins;
//   - backends: TCP and UDP servers on addresses on lo of the namespace,
//     each answering with its own address;
//   - Client: a re-exec of the test binary placed in the namespace (forked
//     from a thread that sits in it for the Env's lifetime: Pdeathsig
//     follows the forking thread) and in the cgroup's child "clients"
//     (clone3 into the cgroup, so not one connect escapes it), driven over
//     stdin/stdout; it refuses to run in the machine's own namespace or
//     outside the test cgroup;
//   - StartProxierProcess: a Proxier in a re-exec of the test binary, to be
//     killed with SIGKILL (forwarding must survive its agent).
//
// A test package that uses clients or proxier processes calls Main from
// its TestMain.
//
// Everything is removed by t.Cleanup (clients killed by PID, cgroups,
// mounts, namespaces), and leftovers of crashed runs (their PID is gone)
// are removed at start. Without root the tests skip with the reason;
// under SKIFF_REQUIRE_INTEGRATION=1 they fail instead.
//
// proxytest is for tests only.
package proxytest
