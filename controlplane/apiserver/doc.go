// Package apiserver serves the skiff API over HTTP with Kubernetes paths
// (/api/v1/..., /apis/apps/v1/...): get, list and watch of every registered
// kind, create, update, update of the status subresource and delete, plus
// the cluster endpoints (/healthz, /readyz, /metrics, /skiff/v1/members,
// /skiff/v1/join).
//
// Request flow:
//
//	HTTP request -> route (path -> resource, namespace, name, subresource)
//	  read:  consistent GET/LIST -> store.ReadBarrier -> local store read
//	         (a follower forwards to the leader; ?consistent=false reads locally)
//	  watch: served from the local store on every server, never forwarded
//	  write: body (size limit) -> api.DecodeObject (strict) -> api.Default
//	         -> api.Validate / api.ValidateUpdate -> store write on the leader
//	         (a follower forwards the request to the leader's API unchanged)
//	  error: every failure is an api.Status with the matching HTTP code
//
// The server knows Raft only through the small Cluster interface and the
// store only through store.Interface. It must not import raft, raftnode,
// client or cli.
package apiserver
