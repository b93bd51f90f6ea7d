package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// proto is what fetch speaks.
type proto string

const (
	protoHTTP proto = "http"
	protoUDP  proto = "udp"
)

// fetchConfig is what `echo fetch` and `echo udp` run.
type fetchConfig struct {
	Target      string // a URL (http) or host:port (udp)
	N           int    // requests to make
	Concurrency int    // requests in flight at once
	Timeout     time.Duration
}

func fetchCommand(ctx context.Context, args []string, stdout, stderr io.Writer, p proto) error {
	cfg := fetchConfig{}
	fs := flag.NewFlagSet(string(p), flag.ContinueOnError)
	fs.IntVar(&cfg.N, "n", 10, "number of requests")
	fs.IntVar(&cfg.Concurrency, "c", 1, "requests in flight at once")
	defTimeout := 2 * time.Second
	if p == protoUDP {
		defTimeout = time.Second
	}
	fs.DurationVar(&cfg.Timeout, "timeout", defTimeout, "timeout of one request")
	requireNetns := fs.Bool("require-test-netns", false, "refuse to run in PID 1's network namespace")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s takes one target, got %q", errUsage, p, pos)
	}
	cfg.Target = pos[0]
	if cfg.N < 1 || cfg.Concurrency < 1 || cfg.Timeout <= 0 {
		return fmt.Errorf("%w: -n, -c and --timeout must be positive", errUsage)
	}
	if p == protoHTTP && !strings.Contains(cfg.Target, "://") {
		cfg.Target = "http://" + cfg.Target
	}
	if *requireNetns {
		if err := checkTestNetns(); err != nil {
			return err
		}
	}
	var ask func(context.Context) (string, error)
	switch p {
	case protoHTTP:
		ask = httpAsker(cfg)
	case protoUDP:
		ask = udpAsker(cfg)
	}
	t := fetch(ctx, cfg, ask)
	t.print(stdout, stderr)
	if t.failed > 0 {
		return fmt.Errorf("%d of %d requests failed", t.failed, t.failed+t.answered())
	}
	return nil
}

// tally counts answers by name.
type tally struct {
	counts   map[string]int
	failed   int
	firstErr error
}

func (t tally) answered() int {
	n := 0
	for _, c := range t.counts {
		n += c
	}
	return n
}

// print writes "name<TAB>count" lines, sorted by name, to stdout and a
// summary to stderr.
func (t tally) print(stdout, stderr io.Writer) {
	names := make([]string, 0, len(t.counts))
	for n := range t.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "%s\t%d\n", n, t.counts[n])
	}
	fmt.Fprintf(stderr, "echo: %d answers from %d names, %d failed\n", t.answered(), len(names), t.failed)
	if t.firstErr != nil {
		fmt.Fprintf(stderr, "echo: first failure: %v\n", t.firstErr)
	}
}

// fetch asks cfg.N times, cfg.Concurrency at once, and counts the
// answers. Requests not made because ctx ended count as failed.
func fetch(ctx context.Context, cfg fetchConfig, ask func(context.Context) (string, error)) tally {
	t := tally{counts: map[string]int{}}
	var mu sync.Mutex
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, cfg.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				name, err := ask(ctx)
				mu.Lock()
				if err != nil {
					t.failed++
					if t.firstErr == nil {
						t.firstErr = err
					}
				} else {
					t.counts[name]++
				}
				mu.Unlock()
			}
		}()
	}
	sent := 0
send:
	for sent < cfg.N {
		select {
		case jobs <- struct{}{}:
			sent++
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	if sent < cfg.N {
		t.failed += cfg.N - sent
		if t.firstErr == nil {
			t.firstErr = context.Cause(ctx)
		}
	}
	return t
}

// httpAsker GETs cfg.Target on a new connection each time.
func httpAsker(cfg fetchConfig) func(context.Context) (string, error) {
	client := &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:             nil, // never through a proxy from the environment
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		},
	}
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Target, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if err != nil {
			return "", fmt.Errorf("read answer: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		name := strings.TrimSpace(string(body))
		if name == "" {
			return "", errors.New("empty answer")
		}
		return name, nil
	}
}

// udpAsker sends a datagram to cfg.Target from a new socket each time (a
// new flow) and waits for the answer.
func udpAsker(cfg fetchConfig) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		d := net.Dialer{Timeout: cfg.Timeout}
		conn, err := d.DialContext(ctx, "udp", cfg.Target)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		deadline := time.Now().Add(cfg.Timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		conn.SetDeadline(deadline)
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		if _, err := conn.Write([]byte("who\n")); err != nil {
			return "", err
		}
		buf := make([]byte, 1024)
		n, err := conn.Read(buf)
		if err != nil {
			return "", err
		}
		name := strings.TrimSpace(string(buf[:n]))
		if name == "" {
			return "", errors.New("empty answer")
		}
		return name, nil
	}
}

// checkTestNetns fails when this process may be in the machine's own
// network namespace: a test client must run in a namespace the test
// created. It compares the namespace with PID 1's; where PID 1's cannot be
// read (a sandbox without ptrace rights), it demands that the namespace
// has no default route, as the lab's test namespaces have none.
func checkTestNetns() error {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("--require-test-netns: %w", err)
	}
	init, err := os.Readlink("/proc/1/ns/net")
	if err == nil {
		if self == init {
			return fmt.Errorf("--require-test-netns: running in PID 1's network namespace (%s); run me with nsenter --net=/run/netns/NAME", self)
		}
		return nil
	}
	has, rerr := hasDefaultRoute()
	if rerr != nil {
		return fmt.Errorf("--require-test-netns: cannot read PID 1's namespace (%v) nor the routes: %w", err, rerr)
	}
	if has {
		return fmt.Errorf("--require-test-netns: cannot read PID 1's namespace (%v) and this one (%s) has a default route; run me with nsenter --net=/run/netns/NAME", err, self)
	}
	return nil
}

// hasDefaultRoute reports whether the current network namespace has an
// IPv4 or IPv6 default route.
func hasDefaultRoute() (bool, error) {
	v4, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(v4), "\n")[1:] {
		f := strings.Fields(line)
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return true, nil
		}
	}
	v6, err := os.ReadFile("/proc/net/ipv6_route")
	if err != nil {
		return false, nil // no IPv6 in this kernel
	}
	for _, line := range strings.Split(string(v6), "\n") {
		f := strings.Fields(line)
		// dst dst_len src src_len next_hop metric refcnt use flags iface
		if len(f) >= 10 && f[0] == strings.Repeat("0", 32) && f[1] == "00" && f[9] != "lo" {
			return true, nil
		}
	}
	return false, nil
}
