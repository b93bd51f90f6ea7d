package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrNoBPFFS is returned when the pin directory is not on a bpffs.
var ErrNoBPFFS = errors.New("not on a bpf filesystem")

// ErrCgroupRoot is returned for an attach at the cgroup v2 root without
// Config.AttachToRoot.
var ErrCgroupRoot = errors.New("cgroup v2 root")

func checkBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("bpf: pin directory: %w", err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("bpf: pin directory %s: %w (mount -t bpf bpffs /sys/fs/bpf)", dir, ErrNoBPFFS)
	}
	return nil
}

// MountBPFFS mounts a bpffs at dir unless one is there already (the agent
// calls it for /sys/fs/bpf on hosts that do not mount it at boot).
func MountBPFFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpf: mount bpffs: %w", err)
	}
	if checkBPFFS(dir) == nil {
		return nil
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("bpf: mount bpffs at %s: %w", dir, err)
	}
	return nil
}

// checkCgroup makes sure path is a cgroup v2 directory, and not the root of
// the hierarchy unless allowed, and returns its id (the inode number).
func checkCgroup(path string, allowRoot bool) (uint64, error) {
	if path == "" {
		return 0, errors.New("bpf: Config.CgroupPath is required")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("bpf: cgroup %s: %w", path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("bpf: %s is not a cgroup v2 directory", path)
	}
	var self, parent unix.Stat_t
	if err := unix.Stat(path, &self); err != nil {
		return 0, fmt.Errorf("bpf: cgroup %s: %w", path, err)
	}
	if err := unix.Stat(filepath.Dir(filepath.Clean(path)), &parent); err != nil {
		return 0, fmt.Errorf("bpf: cgroup %s: %w", path, err)
	}
	// The root is the mount point: its parent is on another filesystem.
	if self.Dev != parent.Dev && !allowRoot {
		return 0, fmt.Errorf("bpf: %s is the %w; attaching there balances every process of the host and needs Config.AttachToRoot", path, ErrCgroupRoot)
	}
	return self.Ino, nil
}
