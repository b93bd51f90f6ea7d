// Package pki is the cluster's certificate authority: creating and loading
// the CA (ECDSA P-256), generating keys and CSRs, signing CSRs and issuing
// certificates for the identities of the cluster (servers, nodes, the
// admin), deciding when a certificate needs renewal, storing key pairs on
// disk (0600, atomically), and the TLS configurations every skiff
// connection uses (TLS 1.3, mutual authentication, certificates that can be
// swapped without restarting listeners).
//
// Identities follow Kubernetes: the subject's CommonName is the user and its
// Organizations are the groups. A node is CN=system:node:<name>,
// O=system:nodes; a server is CN=system:server:<id>, O=system:servers; the
// admin is CN=admin, O=system:masters. SignCSR issues exactly the identity
// the caller authorised, never the one a CSR asks for, so a node cannot
// obtain another node's name.
//
// Source organization:
//
//	ca.go        the CA: create, load, PEM, pool, hash (what join tokens pin)
//	keys.go      keys, CSRs, certificate PEM parsing
//	identity.go  Identity, the groups and user names of the cluster
//	sign.go      SignCSR and Issue: usages, SANs, validity
//	renew.go     NeedsRenewal and RenewalTime
//	files.go     WriteFileAtomic, Bundle (NAME.crt + NAME.key)
//	tls.go       server/client tls.Config, ReloadingCertificate, peer checks
//
// Every time comes from the caller (now time.Time), so tests need no clock.
// A CA is immutable after construction and safe for concurrent use.
//
// pki uses only the standard library and imports no other skiff package
// (imports_test.go checks it): the API server, Raft transport, agent and
// CLI all build on it.
package pki
