package network

import (
	"context"
	"errors"
	"net/netip"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Network gives sandboxes their addresses in the pod network.
//
// Attach and Detach are idempotent per sandbox: attaching an attached
// sandbox returns the address it has, detaching a detached one succeeds.
// An implementation whose state must survive an agent restart keeps it
// itself (CNI's host-local does, on disk); the agent re-attaches adopted
// sandboxes to learn their addresses. Implementations are safe for
// concurrent use.
type Network interface {
	Attach(ctx context.Context, a Attachment) (netip.Addr, error)
	Detach(ctx context.Context, a Attachment) error
}

// Attachment names a sandbox and where its network namespace is.
type Attachment struct {
	Sandbox runtime.SandboxID
	Pod     runtime.PodMeta
	// NetNS is the sandbox's network namespace (runtime.Sandbox.NetNS).
	NetNS string
	// Prefer asks for this address if it is free: the one the pod had
	// before the agent restarted (its status.podIP), so an allocator that
	// lost its state gives it back.
	Prefer netip.Addr
}

// Sentinel errors.
var (
	// ErrExhausted: every address of the pod CIDR is in use.
	ErrExhausted = errors.New("no free address in the pod CIDR")
)
