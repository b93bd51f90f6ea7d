// Package probe runs the liveness, readiness and startup probes of a node's
// containers (httpGet, tcpSocket, exec) with the kubelet's semantics, and
// tells the agent when a result changes.
//
// The agent hands each pod to a Manager with AddPod (again whenever a
// container starts, restarts or stops: the IDs say which container is
// current) and takes it back with RemovePod. The Manager runs one worker
// goroutine per container and probe kind, on an injected clock, and
// publishes result changes on Updates; Started, Ready and Get answer for a
// container at any time.
//
// Semantics, as the kubelet's:
//
//   - A new container starts at Failure for readiness, Success for liveness
//     and Unknown for startup; Updates carries changes from these values.
//   - Probing starts initialDelaySeconds after the container started and
//     repeats every periodSeconds; each probe has timeoutSeconds.
//   - A result flips after successThreshold consecutive successes or
//     failureThreshold consecutive failures.
//   - While a startup probe has not succeeded, liveness and readiness are
//     not probed (the container is not Started, so not Ready); once it
//     succeeds it stops, and the other two begin at once.
//   - A liveness or startup Failure means the agent must restart the
//     container; its worker holds until a new container ID arrives.
//   - While a pod terminates, liveness and startup stop (a draining
//     process is not killed for failing them); readiness goes on, so the
//     pod leaves its Services' endpoints as soon as it stops answering.
//   - httpGet: GET scheme://host:port/path (host defaults to the pod IP,
//     a named port is looked up in the container's ports), a new connection
//     each time, TLS unverified, redirects followed on the same host only
//     (up to 10; a redirect elsewhere counts as success), 200-399 is
//     Success. tcpSocket: a connection opens. exec: exit status 0, with the
//     output (first 10 KiB) as the message.
//   - Messages read like the kubelet's events: "Readiness probe failed:
//     HTTP probe failed with statuscode: 503", "Liveness probe failed: dial
//     tcp 10.0.0.5:8080: connect: connection refused".
//
// Deliberate differences: probes that cannot be run for a reason of the
// pod's spec (a named port the container does not have, an exec command
// that does not exist) count as failures with a "probe errored" message,
// where the kubelet ignores them and so never restarts nor readies the
// container without saying why in its status. And until a container's
// first readiness success, readiness is retried after 10 ms, doubling up
// to periodSeconds (with successThreshold 1; Config.DisableFastStart turns
// it off): a process that listens a few milliseconds after it starts
// would otherwise wait a whole period to become Ready.
//
// Probes run from the agent's network namespace to the pod's IP. The
// package depends on api and nodeagent/runtime only (not on the agent).
package probe
