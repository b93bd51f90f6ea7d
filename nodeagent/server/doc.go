// Package server is the node agent's HTTPS endpoint (the kubelet's port
// 10250): container logs, exec and image import for the API server, which
// relays `skiff logs`, `skiff exec` and `skiff image` to the node a pod or
// an image is on.
//
//	GET  /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&previous=&timestamps=&sinceSeconds=&sinceTime=
//	POST /exec/{namespace}/{pod}/{container}?command=...&stdin=&tty=   (Upgrade: skiff-remotecommand.v1)
//	POST /images   (body: an OCI or docker-save tarball; answers the images imported)
//	GET  /images
//
// It serves TLS with the node's certificate (system:node:<name>, from the
// join handshake) and answers only clients presenting a certificate of the
// cluster CA in group system:servers: the API servers, which authorize the
// user themselves. Errors are api.Status bodies, so the API server passes
// them through unchanged.
//
// The agent gives the server what it needs through small interfaces:
// Containers (which container a pod's name means, and its log file),
// runtime.Execer and runtime.ImageStore.
//
// server imports api, the runtime interface, nodeagent/logs and
// client/remotecommand; never the control plane.
package server
