// Package controllers holds the control loops that run on the Raft leader:
// each watches the store, queues the keys of objects that changed and
// reconciles them (today: endpoints; more to come — deployment, daemonset,
// node lifecycle, garbage collection). They read the leader's local FSM,
// which is up to date on the leader, and write through the store.
//
// Controllers stop the moment leadership is lost: Manager.Run's context is
// the leadership context. The package imports api and controlplane/store,
// never HTTP or Raft.
package controllers
