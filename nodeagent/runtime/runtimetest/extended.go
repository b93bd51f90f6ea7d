package runtimetest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// start creates and starts a container from cfg (Image filled in) and
// returns its ID.
func (s *suite) start(t *testing.T, rt runtime.Runtime, sb runtime.SandboxID, cfg runtime.ContainerConfig) runtime.ContainerID {
	t.Helper()
	cfg.Image = s.image(t, rt)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{"runtimetest": cfg.Meta.Name}
	}
	id, err := rt.CreateContainer(s.ctx(t), sb, cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Meta.Name, err)
	}
	if err := rt.StartContainer(s.ctx(t), id); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Meta.Name, err)
	}
	return id
}

func (s *suite) logDir(t *testing.T) string {
	if s.opts.LogDir != "" {
		dir, err := os.MkdirTemp(s.opts.LogDir, "runtimetest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return t.TempDir()
}

func (s *suite) exec(t *testing.T) {
	rt := s.newRuntime(t)
	ex, ok := rt.(runtime.Execer)
	if !ok {
		t.Fatalf("%T does not implement runtime.Execer", rt)
	}
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "exec")
	id := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Command: sleeping})
	s.waitState(t, rt, id, runtime.ContainerRunning)

	var out, errOut bytes.Buffer
	code, err := ex.Exec(ctx, id, runtime.ExecRequest{Cmd: []string{"echo", "hello"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 || out.String() != "hello\n" {
		t.Errorf("exec echo hello = %d, %v, stdout %q: want 0, hello", code, err, out.String())
	}
	out.Reset()
	code, err = ex.Exec(ctx, id, runtime.ExecRequest{Cmd: []string{"sh", "-c", "echo oops >&2; exit 3"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 3 || errOut.String() != "oops\n" {
		t.Errorf("exec exit 3 = %d, %v, stderr %q: want 3, oops on stderr", code, err, errOut.String())
	}
	out.Reset()
	code, err = ex.Exec(ctx, id, runtime.ExecRequest{Cmd: []string{"cat"}, Stdin: strings.NewReader("ping\n"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "ping\n" {
		t.Errorf("exec cat with stdin = %d, %v, stdout %q: want 0, ping", code, err, out.String())
	}
	if code, err := ex.Exec(ctx, id, runtime.ExecRequest{Cmd: CmdNotFound}); err == nil {
		t.Errorf("exec of a missing executable = %d, nil: want an error", code)
	}
	if err := rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Exec(ctx, id, runtime.ExecRequest{Cmd: []string{"echo", "late"}}); !errors.Is(err, runtime.ErrInvalidState) {
		t.Errorf("exec in an exited container: %v, want ErrInvalidState", err)
	}
	if _, err := ex.Exec(ctx, "no-such-container", runtime.ExecRequest{Cmd: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("exec in an unknown container: %v, want ErrNotFound", err)
	}
}

// logRecord is one CRI log line: "<RFC3339Nano> <stream> <F|P> <text>".
type logRecord struct {
	time         time.Time
	stream, text string
}

func readLog(path string) ([]logRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []logRecord
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(f) != 4 || (f[2] != "F" && f[2] != "P") {
			return nil, errors.New("malformed log line " + line)
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return nil, err
		}
		out = append(out, logRecord{ts, f[1], f[3]})
	}
	return out, nil
}

func (s *suite) logs(t *testing.T) {
	rt := s.newRuntime(t)
	sb := s.sandbox(t, rt, "logs")
	path := filepath.Join(s.logDir(t), "main", "0.log")
	before := time.Now().Add(-time.Second)
	id := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Command: CmdLog, LogPath: path})
	s.waitState(t, rt, id, runtime.ContainerExited)
	// The log is written by a process of its own: give it a moment.
	deadline := time.Now().Add(s.opts.Timeout)
	for {
		recs, err := readLog(path)
		if err == nil && len(recs) >= 2 {
			got := map[string]string{}
			for _, r := range recs {
				got[r.stream] += r.text + "\n"
				if r.time.Before(before) || r.time.After(time.Now().Add(time.Second)) {
					t.Errorf("log record %+v: time is not when it was written", r)
				}
			}
			if got["stdout"] != "out\n" || got["stderr"] != "err\n" || len(recs) != 2 {
				t.Errorf("log %s = %+v: want stdout out, stderr err", path, recs)
			}
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("log %s after %v: %v, content %q: want two records", path, s.opts.Timeout, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *suite) resources(t *testing.T) {
	rt := s.newRuntime(t)
	rr, ok := rt.(ResourceReader)
	if !ok {
		t.Fatalf("%T does not implement runtimetest.ResourceReader", rt)
	}
	sb := s.sandbox(t, rt, "resources")
	want := runtime.Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	id := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Command: sleeping, Resources: want})
	s.waitState(t, rt, id, runtime.ContainerRunning)
	got, err := rr.Resources(s.ctx(t), id)
	if err != nil {
		t.Fatalf("Resources: %v", err)
	}
	if got != want {
		t.Errorf("limits in force = %+v, want %+v", got, want)
	}
	// Without limits: no quota and no memory limit.
	free := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "free"}, Command: sleeping})
	s.waitState(t, rt, free, runtime.ContainerRunning)
	got, err = rr.Resources(s.ctx(t), free)
	if err != nil {
		t.Fatalf("Resources: %v", err)
	}
	if got.CPUQuota != 0 || got.MemoryLimit != 0 {
		t.Errorf("limits of a container without any = %+v: want no quota, no memory limit", got)
	}
}

func (s *suite) oomKilled(t *testing.T) {
	rt := s.newRuntime(t)
	sb := s.sandbox(t, rt, "oom")
	id := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "hog"}, Command: CmdOOM,
		Resources: runtime.Resources{MemoryLimit: 16 << 20}})
	st := s.waitState(t, rt, id, runtime.ContainerExited)
	if st.Reason != "OOMKilled" || st.ExitCode == 0 {
		t.Errorf("a container over its memory limit: %+v: want reason OOMKilled, a non-zero exit code", st)
	}
}

func (s *suite) stopHonoursTERM(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "term")
	id := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Command: CmdTrapTerm})
	s.waitState(t, rt, id, runtime.ContainerRunning)
	// Let the shell install its handler.
	time.Sleep(200 * time.Millisecond)
	const grace = 30 * time.Second
	began := time.Now()
	if err := rt.StopContainer(ctx, id, grace); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	took := time.Since(began)
	st := s.status(t, rt, id)
	if st.State != runtime.ContainerExited || st.ExitCode != 0 || took > grace/3 {
		t.Errorf("stop of a container that handles SIGTERM: %+v after %v: want Exited with 0, well before the grace period", st, took)
	}
	// One that ignores it is killed when the grace period ends.
	stubborn := s.start(t, rt, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "stubborn"}, Command: sleeping})
	s.waitState(t, rt, stubborn, runtime.ContainerRunning)
	began = time.Now()
	if err := rt.StopContainer(ctx, stubborn, 500*time.Millisecond); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	took = time.Since(began)
	if st := s.status(t, rt, stubborn); st.State != runtime.ContainerExited || took > 5*time.Second {
		t.Errorf("stop of a container that ignores SIGTERM: %+v after %v: want Exited soon after the grace period", st, took)
	}
}

func (s *suite) startError(t *testing.T) {
	rt := s.newRuntime(t)
	ctx := s.ctx(t)
	sb := s.sandbox(t, rt, "starterror")
	id, err := rt.CreateContainer(ctx, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"},
		Image: s.image(t, rt), Command: CmdNotFound})
	if err != nil {
		// Refusing at create is fine too, if it says why.
		if !strings.Contains(err.Error(), CmdNotFound[0]) {
			t.Errorf("CreateContainer of a missing executable: %v: want the executable named", err)
		}
		return
	}
	err = rt.StartContainer(ctx, id)
	if err == nil || !strings.Contains(err.Error(), CmdNotFound[0]) {
		t.Fatalf("StartContainer of a missing executable: %v: want an error naming it", err)
	}
	st := s.status(t, rt, id)
	if st.State != runtime.ContainerExited || st.ExitCode == 0 || !strings.Contains(st.Message, CmdNotFound[0]) {
		t.Errorf("status after a failed start = %+v: want Exited, non-zero, the error in the message", st)
	}
	if err := rt.StartContainer(ctx, id); !errors.Is(err, runtime.ErrInvalidState) {
		t.Errorf("starting it again: %v, want ErrInvalidState", err)
	}
}

func (s *suite) importImages(t *testing.T) {
	rt := s.newRuntime(t)
	is, ok := rt.(runtime.ImageStore)
	if !ok {
		t.Fatalf("%T does not implement runtime.ImageStore", rt)
	}
	if len(s.opts.Archive) == 0 {
		t.Fatal("runtimetest: Options.Archive is empty: the suite needs an image tarball to import")
	}
	ctx := s.ctx(t)
	before, err := is.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refs := func(l []runtime.ImageInfo) []string {
		var out []string
		for _, i := range l {
			out = append(out, i.Ref)
		}
		slices.Sort(out)
		return out
	}

	// Malformed archives: an error, and nothing new.
	var truncated bytes.Buffer
	truncated.Write(s.opts.Archive[:len(s.opts.Archive)/2])
	var noImage bytes.Buffer
	tw := tar.NewWriter(&noImage)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	for name, r := range map[string]io.Reader{
		"garbage":   strings.NewReader(strings.Repeat("not a tarball ", 100)),
		"truncated": &truncated,
		"no image":  &noImage,
		"empty":     strings.NewReader(""),
	} {
		if imgs, err := is.ImportImages(ctx, r); err == nil {
			t.Errorf("ImportImages(%s) = %+v, nil: want an error", name, imgs)
		}
	}
	after, err := is.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(refs(before), refs(after)) {
		t.Errorf("images after failed imports = %v, want %v as before", refs(after), refs(before))
	}

	imgs, err := is.ImportImages(ctx, bytes.NewReader(s.opts.Archive))
	if err != nil || len(imgs) == 0 {
		t.Fatalf("ImportImages = %+v, %v: want the archive's images", imgs, err)
	}
	after, err = is.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		i := slices.IndexFunc(after, func(x runtime.ImageInfo) bool { return x.Ref == img.Ref })
		if img.ID == "" || i < 0 || after[i].ID != img.ID || after[i].Size <= 0 {
			t.Errorf("imported %+v; ListImages = %+v: want it listed with its ID and a size", img, after)
		}
		// Imported means usable without a pull.
		if got, err := rt.EnsureImage(ctx, img.Ref, api.PullNever); err != nil || got.ID != img.ID {
			t.Errorf("EnsureImage(%s, Never) after import = %+v, %v", img.Ref, got, err)
		}
	}
}

func (s *suite) pullFailure(t *testing.T) {
	rt := s.newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	// .invalid never resolves (RFC 2606).
	_, err := rt.EnsureImage(ctx, "skiff.invalid/absent:1", api.PullIfNotPresent)
	if !errors.Is(err, runtime.ErrImagePull) {
		t.Errorf("EnsureImage of an image no registry serves: %v, want ErrImagePull", err)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("the failed pull took %v: want it bounded", took)
	}
}
