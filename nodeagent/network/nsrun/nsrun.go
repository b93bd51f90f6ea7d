package nsrun

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread inside the network namespace at path (a
// bind-mounted namespace such as /run/netns/NAME, or /proc/PID/ns/net)
// and returns its error. The calling goroutine's thread is never moved.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("nsrun: open netns %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nsrun: current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			// The thread may be half-switched: retire it with the goroutine.
			errc <- fmt.Errorf("nsrun: enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime ends the thread with the goroutine.
			errc <- fmt.Errorf("nsrun: leave netns %s: %w", path, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// IsNetNS reports whether path is a live network namespace: a file on
// nsfs (a bind mount or /proc/PID/ns/net). A path that does not exist, or
// a leftover mount point whose namespace was unmounted, is not.
func IsNetNS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("nsrun: statfs %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// initNetNSIno is the inode of the initial network namespace on kernels
// that give the initial namespaces fixed numbers (NET_NS_INIT_INO in
// linux/nsfs.h, 6.18 and later).
const initNetNSIno = 0xEFFFFFF9

// InHostNetNS reports whether the calling thread is in the machine's own
// network namespace: PID 1's, or, where /proc/1/ns/net cannot be read (a
// VM whose init hides it), the kernel's initial one. Tests and traffic
// generators call it, with their thread locked, to refuse to run outside
// the namespaces they created.
func InHostNetNS() (bool, error) {
	var self unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &self); err != nil {
		return false, fmt.Errorf("nsrun: own netns: %w", err)
	}
	var host unix.Stat_t
	err := unix.Stat("/proc/1/ns/net", &host)
	switch {
	case err == nil:
		return self.Dev == host.Dev && self.Ino == host.Ino, nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return self.Ino == initNetNSIno, nil
	default:
		return false, fmt.Errorf("nsrun: netns of pid 1: %w", err)
	}
}
