// Package auth holds the API server's authentication, authorization and
// admission checks, and the per-credential rate limits and priority classes
// that keep a flood of user requests from starving nodes and servers.
//
// Request flow, as the API server wires it:
//
//	*http.Request
//	  -> Authenticator.Authenticate   verified client certificate, else
//	                                  "Authorization: Bearer <id>.<secret>",
//	                                  else ErrAnonymous (401 unless public)
//	  -> Limiter.Allow                token bucket per credential; nodes have
//	                                  their own buckets, servers none (429)
//	  -> Gate.Acquire(Priority(user)) concurrency slots per priority class;
//	                                  users never take the system slots (429)
//	  -> Authorizer.Authorize         masters/servers, node rules, roles,
//	                                  non-resource paths (403 with a reason)
//	  -> decode, default, validate
//	  -> AdmitNode                    what a node may change in the objects
//	                                  it may write (403 with the field path)
//	  -> store
//
// Everything here is pure: no I/O, no goroutines, time injected through a
// now func. The token store and the pod index reach this package through the
// one-method interfaces TokenVerifier and PodLookup.
//
// Source organization:
//
//	user.go       User, Role, Source, the well-known groups, NodeName, IsServer
//	authn.go      Authenticator and TokenVerifier
//	authz.go      Attributes, Verb, Decision, Authorizer (dispatch, paths)
//	authz_node.go the node authorizer (Kubernetes' Node authorizer)
//	authz_role.go roles admin, edit and view, cluster-wide or per namespace
//	admission.go  AdmitNode (Kubernetes' NodeRestriction)
//	limiter.go    Limiter: token buckets per credential, bounded LRU
//	gate.go       Gate: concurrency slots per PriorityClass
//
// auth imports api and the standard library only; it must not import the
// store, the API server, raft or the client (TestImports checks this).
package auth
