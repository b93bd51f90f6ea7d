// Package e2e holds end-to-end tests that run the real skiff binary as
// separate processes: today a dev cluster driven by the CLI; later
// multi-node clusters of servers and agents, each node in a network
// namespace the test creates.
//
// The tests build bin/skiff themselves. When run as root they put every
// process in a network namespace of their own (skiff-test-*), so nothing
// they start can touch the machine's network; a leftover namespace of a
// crashed run is removed at the next start.
//
// e2e imports nothing of skiff: it talks to skiff only through the binary.
package e2e
