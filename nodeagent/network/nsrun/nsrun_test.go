package nsrun_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

func netnsOf(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDoEntersAndRestores(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	before := netnsOf(t, "/proc/self/ns/net")
	want, err := os.Stat(ns.Path)
	if err != nil {
		t.Fatal(err)
	}

	if ok, err := nsrun.IsNetNS(ns.Path); !ok || err != nil {
		t.Fatalf("IsNetNS(%s) = %v, %v", ns.Path, ok, err)
	}
	if err := nsrun.Do(ns.Path, func() error {
		if host, err := nsrun.InHostNetNS(); err != nil || host {
			return fmt.Errorf("InHostNetNS inside a created namespace = %v, %v", host, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var inside os.FileInfo
	var ln net.Listener
	sentinel := errors.New("from fn")
	err = nsrun.Do(ns.Path, func() error {
		self, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		inside = self
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
	defer ln.Close()
	if !os.SameFile(inside, want) {
		t.Fatal("fn did not run in the target namespace")
	}

	// The listener lives in the test namespace: dialing its port from here
	// (the namespace the process started in) finds nothing.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("a socket made inside Do is reachable from the original namespace")
	}
	if err := nsrun.Do(ns.Path, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("dial inside the namespace: %v", err)
	}

	// Many concurrent calls leave no thread of the process behind.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := nsrun.Do(ns.Path, func() error { return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, p := range tasks {
		if got, err := os.Readlink(p); err == nil && got != before {
			t.Errorf("thread %s is in %s, want %s", p, got, before)
		}
	}
}

func TestDoBadPath(t *testing.T) {
	if err := nsrun.Do(filepath.Join(t.TempDir(), "none"), func() error {
		t.Error("fn ran")
		return nil
	}); err == nil {
		t.Fatal("Do on a missing path succeeded")
	}
}

func TestIsNetNS(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/proc/self/ns/net", true},
		{file, false},
		{filepath.Join(t.TempDir(), "missing"), false},
	} {
		got, err := nsrun.IsNetNS(tc.path)
		if err != nil || got != tc.want {
			t.Errorf("IsNetNS(%s) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
}
