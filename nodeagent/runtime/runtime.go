package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/skiffhq/skiff/api"
)

// Runtime runs pod sandboxes and their containers on one node. It is the
// seam between the agent, which decides what should run, and the machinery
// that runs it (containerd, or the in-memory fake of simulated nodes).
//
// Concurrency: implementations are safe for concurrent use. The agent
// drives each pod from one worker at a time, so calls about one sandbox and
// its containers never overlap, while calls about different sandboxes do.
// List calls may run concurrently with anything.
//
// Idempotency: StopSandbox, RemoveSandbox, StopContainer and
// RemoveContainer succeed on objects that are already stopped or gone, so a
// retried or repeated teardown never fails (CRI's rule). Every other call
// about an unknown object fails with an error wrapping ErrNotFound.
//
// State lives in the runtime, not in the agent: an agent that restarts
// finds its sandboxes and containers with ListSandboxes and ListContainers
// (metadata and labels say which pod each belongs to) and adopts them
// without restarting anything.
type Runtime interface {
	// Version names the runtime, as the node reports it
	// (status.nodeInfo.containerRuntimeVersion is Name://Version).
	Version(ctx context.Context) (Version, error)

	// RunSandbox creates and starts the environment a pod's containers
	// share (its network namespace; on containerd, a pause container) and
	// returns its ID. The pod network is attached by the agent afterwards,
	// through the sandbox's NetNS.
	RunSandbox(ctx context.Context, cfg SandboxConfig) (SandboxID, error)
	// StopSandbox stops every container of the sandbox (without grace:
	// the agent stops them gracefully first) and the sandbox itself.
	StopSandbox(ctx context.Context, id SandboxID) error
	// RemoveSandbox removes a sandbox and its containers, stopping
	// whatever still runs.
	RemoveSandbox(ctx context.Context, id SandboxID) error
	// SandboxStatus reports one sandbox.
	SandboxStatus(ctx context.Context, id SandboxID) (Sandbox, error)
	// ListSandboxes reports every sandbox of this node.
	ListSandboxes(ctx context.Context) ([]Sandbox, error)

	// EnsureImage makes ref available according to policy (pulling it if
	// needed) and reports what was resolved. PullNever on an absent image
	// fails with ErrImageNotPresent; a failed pull wraps ErrImagePull.
	EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (Image, error)

	// CreateContainer creates (without starting) a container in a sandbox.
	CreateContainer(ctx context.Context, sandbox SandboxID, cfg ContainerConfig) (ContainerID, error)
	// StartContainer starts a created container and returns once it runs.
	// Starting a container in any other state fails with ErrInvalidState.
	StartContainer(ctx context.Context, id ContainerID) error
	// StopContainer asks the container to stop (SIGTERM), waits up to
	// grace, then kills it (SIGKILL), and returns once it has exited.
	StopContainer(ctx context.Context, id ContainerID, grace time.Duration) error
	// RemoveContainer removes a container, killing it if it still runs.
	RemoveContainer(ctx context.Context, id ContainerID) error
	// ContainerStatus reports one container.
	ContainerStatus(ctx context.Context, id ContainerID) (ContainerStatus, error)
	// ListContainers reports the containers of one sandbox, or of every
	// sandbox when sandbox is "".
	ListContainers(ctx context.Context, sandbox SandboxID) ([]Container, error)
}

// Sentinel errors; implementations wrap them (check with errors.Is).
var (
	// ErrNotFound: no sandbox, container or image has the given ID.
	ErrNotFound = errors.New("not found")
	// ErrInvalidState: the object is not in a state the call applies to
	// (starting a container that is not Created).
	ErrInvalidState = errors.New("invalid state")
	// ErrImageNotPresent: the pull policy forbids pulling an absent image.
	ErrImageNotPresent = errors.New("image not present")
	// ErrImagePull: pulling an image failed (the pod shows ErrImagePull).
	ErrImagePull = errors.New("image pull failed")
)

// SandboxID identifies a sandbox within one runtime.
type SandboxID string

// ContainerID identifies a container within one runtime.
type ContainerID string

// ImageID identifies an image's content (a digest, "sha256:...").
type ImageID string

// Version identifies a runtime: Name is a URI scheme ("containerd",
// "fake") that also prefixes container IDs in pod status.
type Version struct {
	Name    string
	Version string
}

// PodMeta says which pod a sandbox belongs to. Attempt counts the pod's
// sandboxes: a sandbox recreated after it died has the next one.
type PodMeta struct {
	Name      string
	Namespace string
	UID       api.UID
	Attempt   uint32
}

// SandboxConfig describes a sandbox to create.
type SandboxConfig struct {
	Pod         PodMeta
	Hostname    string
	Labels      map[string]string
	Annotations map[string]string
}

// SandboxState is whether a sandbox can run containers.
type SandboxState string

// Sandbox states.
const (
	SandboxReady    SandboxState = "Ready"
	SandboxNotReady SandboxState = "NotReady" // stopped, or its namespace is gone
)

// Sandbox is a sandbox as the runtime reports it.
type Sandbox struct {
	ID        SandboxID
	Pod       PodMeta
	State     SandboxState
	CreatedAt time.Time
	// NetNS is the path of the sandbox's network namespace (empty for a
	// runtime without one, such as the fake).
	NetNS       string
	Labels      map[string]string
	Annotations map[string]string
}

// Image is an image resolved by EnsureImage.
type Image struct {
	Ref string  // normalised reference, e.g. docker.io/library/nginx:1.27
	ID  ImageID // content digest
}

// KeyValue is an environment variable.
type KeyValue struct {
	Key   string
	Value string
}

// ContainerMeta says which of a pod's containers this is. Attempt counts
// restarts: the first container of a name is attempt 0, and the agent
// reports the highest attempt as the container's restartCount.
type ContainerMeta struct {
	Name    string
	Attempt uint32
}

// ContainerConfig describes a container to create.
type ContainerConfig struct {
	Meta       ContainerMeta
	Image      Image
	Command    []string
	Args       []string
	Env        []KeyValue
	WorkingDir string
	// Resources are the container's cgroup limits (zero: unlimited).
	Resources Resources
	// LogPath is the file the runtime writes the container's stdout and
	// stderr to, one line per record in the CRI format
	// ("<RFC3339Nano> stdout|stderr F|P <line>"); the agent picks it (one
	// file per attempt, so --previous can read the last one). Empty: the
	// output is discarded.
	LogPath string
	// Labels and Annotations are kept by the runtime and reported back by
	// List and Status.
	Labels      map[string]string
	Annotations map[string]string
}

// ContainerState is where a container is in its life.
type ContainerState string

// Container states.
const (
	ContainerCreated ContainerState = "Created"
	ContainerRunning ContainerState = "Running"
	ContainerExited  ContainerState = "Exited"
	ContainerUnknown ContainerState = "Unknown"
)

// Container is a container as List reports it.
type Container struct {
	ID          ContainerID
	SandboxID   SandboxID
	Meta        ContainerMeta
	Image       Image
	State       ContainerState
	CreatedAt   time.Time
	Labels      map[string]string
	Annotations map[string]string
}

// ContainerStatus is a container with its process's history. StartedAt is
// zero until it started, FinishedAt and ExitCode are set once it exited.
type ContainerStatus struct {
	Container
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	// Reason is a short CamelCase word for how it exited ("Completed",
	// "Error", "OOMKilled"); Message says more.
	Reason  string
	Message string
}

// Resources are a container's cgroup limits, computed by the agent from
// the container's resources (the kubelet's rules): shares from the CPU
// request, quota from the CPU limit, the memory limit as is.
type Resources struct {
	CPUShares   uint64 // cpu.shares; 0: the runtime's default
	CPUQuota    int64  // microseconds per CPUPeriod; 0: unlimited
	CPUPeriod   uint64 // microseconds; 0: 100000
	MemoryLimit int64  // bytes; 0: unlimited
}

// Execer runs commands inside running containers: exec probes and
// `skiff exec`.
type Execer interface {
	// Exec runs req.Cmd in the container and returns its exit code once
	// it exited and its output was copied. A container that is not
	// running fails with ErrInvalidState; a command that cannot be
	// started (not found) is an error, not an exit code. Cancelling ctx
	// kills the process.
	Exec(ctx context.Context, id ContainerID, req ExecRequest) (exitCode int, err error)
}

// ExecRequest is a command to run in a container and its streams.
type ExecRequest struct {
	Cmd    []string
	Stdin  io.Reader // nil: no stdin
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded; unused with TTY (the TTY merges them)
	TTY    bool
	// Resize carries terminal sizes for a TTY (nil: none).
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Width, Height uint16
}

// ImageStore imports and lists a node's images: `skiff image import` and
// `skiff image ls`.
type ImageStore interface {
	// ImportImages loads every image of an OCI layout or docker-save
	// tarball. A malformed archive fails with nothing imported.
	ImportImages(ctx context.Context, r io.Reader) ([]Image, error)
	// ListImages reports the node's images.
	ListImages(ctx context.Context) ([]ImageInfo, error)
}

// ImageInfo is an image as ListImages reports it.
type ImageInfo struct {
	Image
	Size int64 // bytes of content (compressed layers and config)
}
