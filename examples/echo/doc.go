// Command echo is skiff's example workload: a static binary that tells
// who answered, so load balancing can be seen and measured.
//
//	echo [serve]  [--http :8080] [--udp :9090] [--name NAME]
//	echo fetch URL [-n 10] [-c 1] [--timeout 2s]
//	echo udp ADDR [-n 10] [-c 1] [--timeout 1s]
//
// serve answers HTTP GET / with its name (the hostname: in a pod, the pod's
// name), /healthz with 200 "ok" (503 "draining" once SIGTERM arrived, or
// "failing" after a request to /healthz/fail until /healthz/ok), /sleep?d=DUR
// after DUR (for probe timeouts), and answers every UDP datagram with its
// name. It is PID 1 in its container, so it handles SIGTERM itself: it
// fails /healthz, waits --shutdown-delay, finishes in-flight requests
// (up to --shutdown-timeout) and exits 0.
//
// fetch makes N HTTP GETs, each on a new connection, and prints how many
// answers came from each name; udp does the same with N datagrams, each
// from a new socket (a new flow for a load balancer). Both exit 1 if any
// request failed. With --require-test-netns they refuse to run in the same
// network namespace as PID 1 (the lab's rule for test clients run by
// nsenter from a namespace the test created).
//
// It depends on the standard library only, and is built with
// CGO_ENABLED=0 into the image localhost/skiff/echo:latest (make images).
package main
