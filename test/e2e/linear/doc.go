// Package linear checks a skiff cluster's API for linearizability with
// porcupine: a model of one register per key (kept in a Namespace
// object's label "v"), Do that sends one operation and classifies its
// outcome (a definite answer, certainly not applied, or unknown), and a
// History that workers record into concurrently.
//
// The end-to-end tests share it: test/e2e/raft (three servers on
// loopback) and test/e2e (a lab of network namespaces).
//
// It is test support only: nothing outside test/ imports it. It depends on
// porcupine and the standard library, not on skiff's packages (it speaks
// to the API over HTTP).
package linear
