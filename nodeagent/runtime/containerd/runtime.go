package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// runcRuntime is the containerd runtime (shim) every container runs with.
const runcRuntime = "io.containerd.runc.v2"

// Runtime is a runtime.Runtime, runtime.Execer and runtime.ImageStore on
// one containerd namespace. It is safe for concurrent use and keeps no
// state of its own beyond caches: everything is read back from containerd.
type Runtime struct {
	cfg       Config
	client    *containerd.Client
	openFiles uint64 // containers' RLIMIT_NOFILE

	cgroupOnce   sync.Once
	cgroupMounts []cgroupMount
	cgroupErr    error

	imagesMu sync.Mutex
	images   map[string]cachedImage // by normalised reference
}

var (
	_ runtime.Runtime    = (*Runtime)(nil)
	_ runtime.Execer     = (*Runtime)(nil)
	_ runtime.ImageStore = (*Runtime)(nil)
)

// New connects to containerd at cfg.Address. It does not wait for the
// daemon: the first call that needs it does (use Daemon to start one).
func New(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithDefaultRuntime(runcRuntime))
	if err != nil {
		return nil, fmt.Errorf("containerd: connect %s: %w", cfg.Address, err)
	}
	return &Runtime{cfg: cfg, client: c, openFiles: openFilesLimit(), images: map[string]cachedImage{}}, nil
}

// Close closes the connection to containerd. Sandboxes and containers
// keep running.
func (r *Runtime) Close() error { return r.client.Close() }

// Namespace is the containerd namespace the runtime works in.
func (r *Runtime) Namespace() string { return r.cfg.Namespace }

// ns puts the runtime's namespace on ctx (for the client-side helpers
// that read it from the context rather than the connection).
func (r *Runtime) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

// Version implements runtime.Runtime.
func (r *Runtime) Version(ctx context.Context) (runtime.Version, error) {
	v, err := r.client.Version(r.ns(ctx))
	if err != nil {
		return runtime.Version{}, fmt.Errorf("containerd: version: %w", err)
	}
	return runtime.Version{Name: "containerd", Version: v.Version}, nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notFound wraps a containerd "not found" in runtime.ErrNotFound.
func notFound(err error) error {
	if errdefs.IsNotFound(err) && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("%w: %w", runtime.ErrNotFound, err)
	}
	return err
}
