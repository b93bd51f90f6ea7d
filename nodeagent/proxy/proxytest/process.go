package proxytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// processSpec is what a proxier process runs.
type processSpec struct {
	Mode       proxy.Mode
	PinDir     string
	CgroupPath string
	NetNS      string
	NetnsPaths []string
	Services   []*api.Service
	Endpoints  []*api.Endpoints
}

// StartProxierProcess runs a Proxier as an agent process would: this test
// binary re-executed (the test package's TestMain calls Main) creates it
// from cfg's Mode, PinDir, CgroupPath, NetNS and NetnsPaths, syncs
// services and endpoints once, and then runs until it is killed. It
// returns the process once the sync is done; t.Cleanup kills it (by PID)
// if the test did not.
func StartProxierProcess(t testing.TB, cfg proxy.Config, services []*api.Service, endpoints []*api.Endpoints) *os.Process {
	t.Helper()
	spec := processSpec{Mode: cfg.Mode, PinDir: cfg.PinDir, CgroupPath: cfg.CgroupPath, NetNS: cfg.NetNS,
		Services: services, Endpoints: endpoints}
	if cfg.NetnsPaths != nil {
		paths, err := cfg.NetnsPaths()
		if err != nil {
			t.Fatal(err)
		}
		spec.NetnsPaths = paths
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=proxier")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := processSpawner()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.start(cmd); err != nil {
		t.Fatalf("start proxier process: %v", err)
	}
	waited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-waited
	})
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		t.Fatalf("proxier process: %v", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "synced" {
		t.Fatalf("proxier process: %q, %v", line, err)
	}
	return cmd.Process
}

// proxierMain is the proxier process: it reads its spec from stdin, syncs
// and waits for stdin to close (or for SIGKILL).
func proxierMain(stdin io.Reader, stdout io.Writer) int {
	r := bufio.NewReader(stdin)
	var spec processSpec
	if err := json.NewDecoder(r).Decode(&spec); err != nil {
		fmt.Fprintln(os.Stderr, "proxier process:", err)
		return 2
	}
	paths := spec.NetnsPaths
	p, err := proxy.New(proxy.Config{
		Mode:       spec.Mode,
		PinDir:     spec.PinDir,
		CgroupPath: spec.CgroupPath,
		NetNS:      spec.NetNS,
		NetnsPaths: func() ([]string, error) { return paths, nil },
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxier process:", err)
		return 1
	}
	if err := p.Sync(context.Background(), spec.Services, spec.Endpoints); err != nil {
		fmt.Fprintln(os.Stderr, "proxier process:", err)
		return 1
	}
	fmt.Fprintln(stdout, "synced")
	io.Copy(io.Discard, r)
	if err := p.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "proxier process:", err)
		return 1
	}
	return 0
}
