package store

import (
	"context"
	"errors"

	"github.com/skiffhq/skiff/api"
)

// Sentinel errors. Returned errors wrap them with context; check with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: a precondition (resourceVersion or uid) did not hold.
	ErrConflict = errors.New("conflict")
	// ErrGone: a watch asked to resume from a resourceVersion older than the
	// history kept; relist and watch from the list's resourceVersion.
	ErrGone = errors.New("resource version too old")
	// ErrFutureVersion: a watch asked to resume from a resourceVersion this
	// server has not reached.
	ErrFutureVersion = errors.New("resource version not reached yet")
	// ErrNotLeader: writes and consistent reads must go to the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrUnknownOutcome: leadership was lost while a write was in flight; it
	// may or may not have been committed.
	ErrUnknownOutcome = errors.New("outcome unknown: leadership lost during write")
	// ErrInvalid: the write is malformed (no name, unregistered kind, ...).
	ErrInvalid = errors.New("invalid")
	// ErrWatchClosed: a watcher was dropped because it fell too far behind or
	// the store was restored from a snapshot; resume from the last seen
	// resourceVersion.
	ErrWatchClosed = errors.New("watch closed")
)

// Key addresses one object.
type Key struct {
	Kind      api.Kind
	Namespace string // "" for cluster-scoped kinds
	Name      string
}

// KeyOf returns the key of an object.
func KeyOf(o api.Object) Key {
	m := o.GetObjectMeta()
	return Key{Kind: api.KindOf(o), Namespace: m.Namespace, Name: m.Name}
}

// ListOptions filters a list or a watch.
type ListOptions struct {
	Namespace string // "" means all namespaces
	Labels    api.Selector
	Fields    api.FieldSelector
	// OwnerUID, if set, keeps only objects with an ownerReference to it
	// (served from an index; lists only, watches ignore it).
	OwnerUID api.UID
}

// EventType says what happened to an object.
type EventType string

// Watch event types (Kubernetes' names).
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change seen by a watcher. For Deleted, Object is the last
// state of the object with ResourceVersion set to the deletion's.
type Event struct {
	Type            EventType
	Object          api.Object
	ResourceVersion uint64
}

// Watcher streams events until stopped. When Events is closed, Err says why
// (ErrWatchClosed: resume from the last resourceVersion seen).
type Watcher interface {
	Events() <-chan Event
	Err() error
	Stop()
	// Progress is a resourceVersion such that every event at or below it
	// has already been received from Events: a bookmark at Progress lets a
	// client resume without missing anything.
	Progress() uint64
}

// Preconditions guard an update or delete.
type Preconditions struct {
	ResourceVersion uint64 // 0: any
	UID             api.UID
}

// OpType is the kind of a write.
type OpType uint8

// Write operations.
const (
	OpCreate OpType = iota + 1
	OpUpdate
	OpUpdateStatus
	OpDelete
	// OpBind sets a pending pod's spec.nodeName to Node, checked against
	// the pod's resourceVersion (Preconditions) and the node's capacity.
	OpBind
)

// Op is one write. Object is set for create and updates; Key for delete.
// Updates take their precondition from Object's resourceVersion (if set).
type Op struct {
	Type          OpType
	Object        api.Object
	Key           Key
	Preconditions Preconditions
	Node          string // OpBind
	// Grace applies to OpDelete of a pod bound to a node: nil gives the
	// pod its spec.terminationGracePeriodSeconds, a positive value that
	// many seconds, 0 deletes it at once (force). A graceful delete only
	// marks the pod (deletionTimestamp, deletionGracePeriodSeconds); its
	// node stops it and then deletes it with grace 0. A pod on no node, or
	// one that has finished, is deleted at once whatever the grace.
	Grace *int64
}

// Result is the outcome of one Op: the object as stored (for delete, as it
// was before) or an error wrapping one of the sentinels.
type Result struct {
	Object api.Object
	Err    error
}

// Reader serves reads from the local replica.
type Reader interface {
	Get(key Key) (api.Object, error)
	// List returns matching objects sorted by namespace and name, and the
	// resourceVersion the list was taken at.
	List(kind api.Kind, opts ListOptions) ([]api.Object, uint64, error)
	// Watch streams changes after fromRV (0: from now).
	Watch(kind api.Kind, opts ListOptions, fromRV uint64) (Watcher, error)
	// ListAndWatch lists and starts a watch at the list's resourceVersion
	// atomically: no change is lost between the two.
	ListAndWatch(kind api.Kind, opts ListOptions) ([]api.Object, uint64, Watcher, error)
	// LastIndex is the resourceVersion of the latest applied write.
	LastIndex() uint64
}

// Writer commits writes through consensus. On a follower it returns
// ErrNotLeader.
type Writer interface {
	Create(ctx context.Context, o api.Object) (api.Object, error)
	Update(ctx context.Context, o api.Object) (api.Object, error)
	UpdateStatus(ctx context.Context, o api.Object) (api.Object, error)
	Delete(ctx context.Context, key Key, pre Preconditions) (api.Object, error)
	// Batch commits several writes in one log entry; each succeeds or fails
	// on its own.
	Batch(ctx context.Context, ops []Op) ([]Result, error)
}

// Interface is everything the API server needs from the store.
type Interface interface {
	Reader
	Writer
	// ReadBarrier returns once the local replica reflects every write
	// acknowledged before the call (a linearizable read point). It returns
	// ErrNotLeader on a follower.
	ReadBarrier(ctx context.Context) error
	IsLeader() bool
}
