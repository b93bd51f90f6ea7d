package containerd

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Config configures a Runtime. Only Address is required.
type Config struct {
	// Address is containerd's gRPC socket.
	Address string
	// Namespace is the containerd namespace holding this node's sandboxes,
	// containers and images (default "skiff").
	Namespace string
	// CgroupParent is the cgroup every pod's cgroup goes under (default
	// "/skiff"): a container's cgroup is "<parent>/pod<uid>/<id>".
	CgroupParent string
	// StateDir holds the sandboxes' network namespace mounts and exec
	// FIFOs (default "/run/skiff/containerd").
	StateDir string
	// LogDriver is the absolute path of the binary the shim runs as
	// `LogDriver log-driver <options>` to write a container's log file
	// (the skiff binary itself; see package logdriver). Empty: a container
	// with a LogPath fails to start.
	LogDriver string
	// LogMaxSize and LogMaxFiles bound each container's log file (default
	// 10 MiB, 5 files).
	LogMaxSize  int64
	LogMaxFiles int
	// Snapshotter unpacks images and prepares root filesystems (default
	// "overlayfs").
	Snapshotter string
	// PullTimeout bounds a whole image pull (default 10 minutes);
	// DialTimeout bounds each connection to a registry (default 10 s), so
	// an unreachable registry fails fast.
	PullTimeout time.Duration
	DialTimeout time.Duration
	// SeccompUnconfined runs containers without a seccomp filter (the
	// kubelet's default) instead of containerd's default profile (Docker's,
	// Kubernetes' RuntimeDefault). The profile costs runc about 35 ms per
	// container start on this hardware.
	SeccompUnconfined bool
	// Logger receives what the runtime cannot return as an error.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultNamespace    = "skiff"
	DefaultCgroupParent = "/skiff"
	DefaultStateDir     = "/run/skiff/containerd"
	DefaultSnapshotter  = "overlayfs"
	DefaultLogMaxSize   = 10 << 20
	DefaultLogMaxFiles  = 5
)

func (c Config) withDefaults() (Config, error) {
	if c.Address == "" {
		return c, fmt.Errorf("containerd: no socket address")
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.CgroupParent == "" {
		c.CgroupParent = DefaultCgroupParent
	}
	if !filepath.IsAbs(c.CgroupParent) {
		return c, fmt.Errorf("containerd: cgroup parent %q is not absolute", c.CgroupParent)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.LogDriver != "" && !filepath.IsAbs(c.LogDriver) {
		return c, fmt.Errorf("containerd: log driver %q is not an absolute path", c.LogDriver)
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = DefaultLogMaxSize
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	if c.Snapshotter == "" {
		c.Snapshotter = DefaultSnapshotter
	}
	if c.PullTimeout == 0 {
		c.PullTimeout = 10 * time.Minute
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
