package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientStream is a pod-like client that requests a ClusterIP over and
// over: a shell in the test's network namespace and in a cgroup under the
// pods' parent, where the node's connect hooks are attached, running
// `echo fetch URL -n 10` in a loop and printing "ok" or "FAIL" per round.
type clientStream struct {
	cmd  *exec.Cmd
	stop string // the loop ends when this file exists
	done chan struct{}

	mu    sync.Mutex
	ok    int
	fails []string
}

func (e *env) startClientStream(t *testing.T, echoBin, cgroupParent, url string) *clientStream {
	return startClientStream(t, "/run/netns/"+e.netns, echoBin, cgroupParent, url)
}

// startClientStream starts a clientStream in the network namespace at
// netnsPath.
func startClientStream(t *testing.T, netnsPath, echoBin, cgroupParent, url string) *clientStream {
	t.Helper()
	cg := podLikeCgroup(t, cgroupParent, "e2e-client")
	s := &clientStream{stop: filepath.Join(t.TempDir(), "stop"), done: make(chan struct{})}
	script := `echo $$ > ` + cg + `/cgroup.procs || exit 1
while [ ! -e ` + s.stop + ` ]; do
  if out=$(` + echoBin + ` fetch ` + url + ` -n 10 --timeout 1s --require-test-netns 2>&1); then echo ok; else echo "FAIL $out" | tr '\n' ' '; echo; fi
done`
	s.cmd = exec.Command("nsenter", "--net="+netnsPath, "sh", "-c", script)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			if sc.Text() == "ok" {
				s.ok++
			} else {
				s.fails = append(s.fails, sc.Text())
			}
			s.mu.Unlock()
		}
		s.cmd.Wait()
	}()
	t.Cleanup(func() {
		s.end()
		os.Remove(cg)
	})
	return s
}

// rounds is how many rounds have passed, and the failed ones.
func (s *clientStream) rounds() (ok int, fails []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, append([]string(nil), s.fails...)
}

// end stops the loop after its current round and waits for it.
func (s *clientStream) end() (ok int, fails []string) {
	os.WriteFile(s.stop, nil, 0o644)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	return s.rounds()
}

// failSummary shortens a list of failed rounds for an error message.
func failSummary(fails []string) string {
	if len(fails) > 3 {
		fails = append(fails[:3:3], "...")
	}
	return strings.Join(fails, "\n")
}

// podLikeCgroup creates a cgroup v2 directory under a node's pods' parent
// (where its connect hooks are attached) for a pod-like test client to
// join, and returns it; the caller removes it once its process is gone.
func podLikeCgroup(t *testing.T, cgroupParent, name string) string {
	t.Helper()
	root := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(root + "/cgroup.procs"); err != nil {
		root = "/sys/fs/cgroup"
	}
	cg := filepath.Join(root, cgroupParent, name)
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	return cg
}
