package fake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Interpret is the default Program: it understands a container's command
// (Command then Args) when it is `echo ...`, `true`, `false`, or
// `sh -c SCRIPT` where the script is only `echo WORDS [>&2]` and `exit N`
// statements separated by ";" — they print and exit at once. Anything
// else runs until stopped.
func Interpret(cfg runtime.ContainerConfig) Program {
	argv := append(append([]string(nil), cfg.Command...), cfg.Args...)
	s, ok := interpret(argv)
	if !ok {
		return Program{}
	}
	return Program{Stdout: s.stdout, Stderr: s.stderr, ExitCode: &s.code}
}

// script is what an interpreted command prints and its exit status.
type script struct {
	stdout, stderr []string
	code           int32
}

func interpret(argv []string) (script, bool) {
	if len(argv) == 0 {
		return script{}, false
	}
	switch filepath.Base(argv[0]) {
	case "echo":
		return script{stdout: []string{strings.Join(argv[1:], " ")}}, true
	case "true":
		return script{}, true
	case "false":
		return script{code: 1}, true
	case "sh":
		if len(argv) == 3 && argv[1] == "-c" {
			return shell(argv[2])
		}
	}
	return script{}, false
}

// shell runs the little shell of Interpret.
func shell(src string) (script, bool) {
	var s script
	for stmt := range strings.SplitSeq(src, ";") {
		f := strings.Fields(stmt)
		switch {
		case len(f) == 0:
		case f[0] == "echo":
			if len(f) > 1 && f[len(f)-1] == ">&2" {
				s.stderr = append(s.stderr, strings.Join(f[1:len(f)-1], " "))
			} else {
				s.stdout = append(s.stdout, strings.Join(f[1:], " "))
			}
		case f[0] == "exit" && len(f) == 2:
			code, err := strconv.ParseInt(f[1], 10, 32)
			if err != nil {
				return s, false
			}
			s.code = int32(code)
			return s, true
		default:
			return s, false
		}
	}
	return s, true
}

// writeLog appends a program's output to a container's log file as CRI
// records.
func writeLog(path string, now time.Time, p Program) error {
	if path == "" || len(p.Stdout)+len(p.Stderr) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	ts := now.UTC().Format(time.RFC3339Nano)
	var b strings.Builder
	for _, l := range p.Stdout {
		fmt.Fprintf(&b, "%s stdout F %s\n", ts, l)
	}
	for _, l := range p.Stderr {
		fmt.Fprintf(&b, "%s stderr F %s\n", ts, l)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Exec implements runtime.Execer with builtins: echo, cat (stdin to
// stdout), true, false and the little shell of Interpret. Any other
// command "is not found".
func (r *Runtime) Exec(ctx context.Context, id runtime.ContainerID, req runtime.ExecRequest) (int, error) {
	r.mu.Lock()
	c, ok := r.containers[id]
	var state runtime.ContainerState
	if ok {
		state = c.st.State
	}
	r.mu.Unlock()
	if !ok {
		return -1, fmt.Errorf("fake: exec in %s: %w", id, runtime.ErrNotFound)
	}
	if state != runtime.ContainerRunning {
		return -1, fmt.Errorf("fake: exec in %s: it is %s: %w", id, state, runtime.ErrInvalidState)
	}
	if len(req.Cmd) == 0 {
		return -1, fmt.Errorf("fake: exec in %s: no command", id)
	}
	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if req.TTY {
		stderr = stdout
	}
	if filepath.Base(req.Cmd[0]) == "cat" && len(req.Cmd) == 1 {
		if req.Stdin != nil {
			if _, err := io.Copy(stdout, req.Stdin); err != nil {
				return -1, fmt.Errorf("fake: exec in %s: %w", id, err)
			}
		}
		return 0, ctx.Err()
	}
	s, ok := interpret(req.Cmd)
	if !ok {
		return -1, fmt.Errorf("fake: exec in %s: exec: %q: executable file not found in $PATH", id, req.Cmd[0])
	}
	for _, l := range s.stdout {
		fmt.Fprintln(stdout, l)
	}
	for _, l := range s.stderr {
		fmt.Fprintln(stderr, l)
	}
	return int(s.code), nil
}

// Resources reports the limits a container was created with, as a real
// runtime's cgroup would enforce them (runtimetest.ResourceReader).
func (r *Runtime) Resources(_ context.Context, id runtime.ContainerID) (runtime.Resources, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return runtime.Resources{}, fmt.Errorf("fake: container %s: %w", id, runtime.ErrNotFound)
	}
	res := c.resources
	if res.CPUShares == 0 {
		res.CPUShares = 1024
	}
	if res.CPUPeriod == 0 {
		res.CPUPeriod = 100000
	}
	return res, nil
}
