package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bench/internal/load"
	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
	"github.com/skiffhq/skiff/nodeagent/proxy"
)

// A child process learns its role, arguments and namespace from these.
const (
	roleEnv = "SKIFF_BENCH_DP_ROLE"
	argsEnv = "SKIFF_BENCH_DP_ARGS"
	nsEnv   = "SKIFF_BENCH_DP_NETNS"
)

// runRole runs the child role named in the environment, if any, and
// exits.
func runRole() {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	if err := checkNamespace(); err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		os.Exit(2)
	}
	args := []byte(os.Getenv(argsEnv))
	var err error
	switch role {
	case "backends":
		err = backendsMain(args)
	case "load":
		err = loadMain(args)
	case "bulk":
		err = bulkMain(args)
	case "userspace":
		err = userspaceMain(args)
	default:
		err = fmt.Errorf("unknown role")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, role+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// checkNamespace refuses to run outside the bench's namespace: traffic
// must never start in the machine's own (lab rule 3).
func checkNamespace() error {
	host, err := nsrun.InHostNetNS()
	if err != nil {
		return err
	}
	var self, want unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return err
	}
	if err := unix.Stat(os.Getenv(nsEnv), &want); err != nil {
		return fmt.Errorf("bench namespace: %w", err)
	}
	if host || self.Ino != want.Ino || self.Dev != want.Dev {
		return errors.New("not in the bench's network namespace: refusing to run")
	}
	return nil
}

// backendsArgs: HTTP servers on addr:httpPort and bulk senders on
// addr:bulkPort for each address.
type backendsArgs struct {
	Addrs    []string
	HTTPPort int
	BulkPort int
}

func backendsMain(raw []byte) error {
	var a backendsArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	for _, addr := range a.Addrs {
		name := []byte(addr + "\n")
		ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", addr, a.HTTPPort))
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(name) })}
		go srv.Serve(ln)
		bl, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", addr, a.BulkPort))
		if err != nil {
			return err
		}
		go serveBulk(bl)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin or kills us
	return nil
}

// serveBulk sends zeros on every connection until the peer goes away.
func serveBulk(ln net.Listener) {
	buf := make([]byte, 256<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// loadArgs: a closed loop of short HTTP connections.
type loadArgs struct {
	Targets  []string // addr:port, used round-robin
	Workers  int
	Warmup   time.Duration
	Duration time.Duration
}

// loadResult is what the load generator prints.
type loadResult struct {
	Requests int
	Seconds  float64
	P50, P99 time.Duration
	Errors   int
	FirstErr string
	// CPU is the load generator's own CPU time in its window.
	CPU time.Duration
}

var request = []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")

func loadMain(raw []byte) error {
	var a loadArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	var next atomic.Uint64
	cpuAtStart := make(chan time.Duration, 1)
	go func() {
		time.Sleep(a.Warmup)
		cpuAtStart <- selfCPU()
	}()
	bufs := sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}
	res := load.Run(context.Background(), load.Config{Workers: a.Workers, Warmup: a.Warmup, Duration: a.Duration},
		func(ctx context.Context, worker, seq int) error {
			target := a.Targets[next.Add(1)%uint64(len(a.Targets))]
			c, err := net.DialTimeout("tcp4", target, 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(request); err != nil {
				return err
			}
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			buf := *bp
			n := 0
			for {
				m, err := c.Read(buf[n:])
				n += m
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if n == len(buf) {
					return errors.New("response too long")
				}
			}
			if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 ") {
				return fmt.Errorf("response %q", buf[:min(n, 40)])
			}
			return nil
		})
	out := loadResult{Requests: res.Ops, Seconds: res.Window.Seconds(), P50: res.Percentile(0.5), P99: res.Percentile(0.99), Errors: res.Errors,
		CPU: selfCPU() - <-cpuAtStart}
	if res.FirstErr != nil {
		out.FirstErr = res.FirstErr.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// bulkArgs: one long-lived connection read for Duration after Warmup.
type bulkArgs struct {
	Target   string
	Warmup   time.Duration
	Duration time.Duration
}

type bulkResult struct {
	Bytes   int64
	Seconds float64
}

func bulkMain(raw []byte) error {
	var a bulkArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp4", a.Target, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	read := func(until time.Time) (int64, error) {
		var n int64
		c.SetReadDeadline(until)
		for {
			m, err := c.Read(buf)
			n += int64(m)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return n, nil
				}
				return n, err
			}
		}
	}
	if _, err := read(time.Now().Add(a.Warmup)); err != nil {
		return err
	}
	start := time.Now()
	n, err := read(start.Add(a.Duration))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(bulkResult{Bytes: n, Seconds: time.Since(start).Seconds()})
}

// userspaceArgs: the userspace proxier in its own process, as the agent
// would run it, serving the services.
type userspaceArgs struct {
	Services  []*api.Service
	Endpoints []*api.Endpoints
	// CPUProfile, when set, is where the proxier's CPU profile goes.
	CPUProfile string
}

func userspaceMain(raw []byte) error {
	var a userspaceArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	if a.CPUProfile != "" {
		f, err := os.Create(a.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	p, err := proxy.New(proxy.Config{Mode: proxy.ModeUserspace})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Sync(context.Background(), a.Services, a.Endpoints); err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	return err
}

// selfCPU is the process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
