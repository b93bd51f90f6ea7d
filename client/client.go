// Package client is the Go client of the skiff API: CRUD, list, and watch
// with automatic resume and relist. The CLI and node agents use it.
//
// client depends on api only.
package client

import (
	"context"

	"github.com/skiffhq/skiff/api"
)

// Config is what admin.conf (and any client config) holds.
type Config struct {
	APIVersion string   `json:"apiVersion"` // "skiff/v1"
	Kind       string   `json:"kind"`       // "Config"
	Servers    []string `json:"servers"`    // API base URLs, e.g. http://127.0.0.1:6443
}

// ListOptions filters a list or watch.
type ListOptions struct {
	Namespace     string // "" = all namespaces (or cluster-scoped kinds)
	LabelSelector string // kubectl -l syntax
	FieldSelector string // e.g. spec.nodeName=node-1
	// Consistent asks for a linearizable read (the default for the server;
	// false allows a possibly stale read from the nearest server).
	Stale bool
}

// List is the result of a list call.
type List struct {
	Items           []api.Object
	ResourceVersion string
}

// EventType is a watch event type.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	Bookmark EventType = "BOOKMARK"
	// Relisted is delivered (with Object nil) before the ADDED events of a
	// relist forced by a 410 Gone: consumers reconcile against the new list.
	Relisted EventType = "RELISTED"
)

// Event is one watch event.
type Event struct {
	Type   EventType
	Object api.Object
}

// DeleteOptions are the preconditions of a delete.
type DeleteOptions struct {
	ResourceVersion string
	UID             api.UID
}

// Member is one control-plane server as `skiff members` shows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Members is the cluster membership with the answering server's view.
type Members struct {
	Members      []Member `json:"members"`
	Leader       string   `json:"leader"`
	LastIndex    uint64   `json:"lastIndex"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Server       string   `json:"server"` // id of the server that answered
}

// Client talks to one cluster; it is safe for concurrent use.
type Client struct {
	cfg Config
}

var _ = context.Background
