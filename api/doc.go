// Package api holds skiff's object types (Kubernetes-shaped: apiVersion, kind,
// metadata, spec, status), their registry of kinds and resource names, strict
// manifest decoding, defaulting, validation and label selectors.
//
// api imports nothing of skiff: every other package may depend on it.
package api
