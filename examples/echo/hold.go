package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// holdConfig is what `echo hold` runs.
type holdConfig struct {
	Target   *url.URL
	For      time.Duration // how long to hold the connection
	Interval time.Duration // pause between requests
	Timeout  time.Duration // of one request
}

// holdCommand keeps one TCP connection open to an HTTP server and sends a
// request over it every interval: a long-lived connection whose breaking
// (a reset, a close, a request answered by another backend) fails it.
func holdCommand(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := holdConfig{}
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	fs.DurationVar(&cfg.For, "for", 10*time.Second, "how long to hold the connection")
	fs.DurationVar(&cfg.Interval, "interval", 100*time.Millisecond, "pause between requests")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Second, "timeout of one request")
	requireNetns := fs.Bool("require-test-netns", false, "refuse to run in PID 1's network namespace")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: hold takes one URL, got %q", errUsage, pos)
	}
	target := pos[0]
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	if cfg.Target, err = url.Parse(target); err != nil || cfg.Target.Scheme != "http" || cfg.Target.Host == "" {
		return fmt.Errorf("%w: hold: %q is not an http:// URL", errUsage, pos[0])
	}
	if cfg.For <= 0 || cfg.Interval < 0 || cfg.Timeout <= 0 {
		return fmt.Errorf("%w: --for and --timeout must be positive, --interval not negative", errUsage)
	}
	if *requireNetns {
		if err := checkTestNetns(); err != nil {
			return err
		}
	}
	return hold(ctx, cfg, stdout)
}

func hold(ctx context.Context, cfg holdConfig, stdout io.Writer) error {
	host := cfg.Target.Host
	if cfg.Target.Port() == "" {
		host = net.JoinHostPort(host, "80")
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	r := bufio.NewReader(conn)
	path := cfg.Target.RequestURI()
	var backend string
	n := 0
	for {
		name, err := holdOnce(conn, r, cfg.Target.Host, path, cfg.Timeout)
		if err == nil && backend != "" && name != backend {
			err = fmt.Errorf("answered by %s, the connection's backend was %s", name, backend)
		}
		if err != nil {
			return fmt.Errorf("the connection broke after %d requests and %v: %w", n, time.Since(start).Round(time.Millisecond), err)
		}
		backend = name
		n++
		if time.Since(start) >= cfg.For {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped after %d requests: %w", n, ctx.Err())
		case <-time.After(cfg.Interval):
		}
	}
	fmt.Fprintf(stdout, "held one connection to %s for %v: %d requests\n", backend, time.Since(start).Round(time.Millisecond), n)
	return nil
}

// holdOnce sends one request over conn and reads its answer: the name of
// the server.
func holdOnce(conn net.Conn, r *bufio.Reader, host, path string, timeout time.Duration) (string, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: echo-hold\r\n\r\n", path, host); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if resp.Close {
		return "", errors.New("the server closed the connection")
	}
	return strings.TrimSpace(string(body)), nil
}
