package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// Forward is one relayed address: connections to Listen (in the calling
// process's namespace, loopback) are relayed to Target, dialled from the
// namespace at Netns.
type Forward struct {
	Listen, Target string
}

// ParseForward parses LISTEN=TARGET.
func ParseForward(s string) (Forward, error) {
	l, t, ok := strings.Cut(s, "=")
	if !ok || l == "" || t == "" {
		return Forward{}, fmt.Errorf("forward %q: want LISTEN=TARGET, e.g. 127.0.0.1:7001=10.250.0.11:6443", s)
	}
	host, _, err := net.SplitHostPort(l)
	if err != nil {
		return Forward{}, fmt.Errorf("forward %q: %w", s, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return Forward{}, fmt.Errorf("forward %q: listen on a loopback address only", s)
	}
	return Forward{Listen: l, Target: t}, nil
}

// RunForwarder relays every forward until ctx ends: the lab's way in from
// the machine's namespace to API servers that listen on the lab's LAN.
func RunForwarder(ctx context.Context, netns string, forwards []Forward, log *slog.Logger) error {
	var lns []net.Listener
	for _, f := range forwards {
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("lab: forward: %w", err)
		}
		lns = append(lns, ln)
	}
	var wg sync.WaitGroup
	for i, ln := range lns {
		f := forwards[i]
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return // closed
				}
				wg.Go(func() { relay(ctx, c, netns, f.Target, log) })
			}
		})
	}
	log.Info("forwarding", "netns", netns, "forwards", forwards)
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	return nil
}

// relay copies between c and a connection to target dialled in netns.
func relay(ctx context.Context, c net.Conn, netns, target string, log *slog.Logger) {
	defer c.Close()
	var up net.Conn
	err := nsrun.Do(netnsPath(netns), func() error {
		// A socket stays in the namespace it was created in.
		var err error
		up, err = net.DialTimeout("tcp", target, 5*time.Second)
		return err
	})
	if err != nil {
		log.Debug("forward: dial", "target", target, "err", err)
		return
	}
	defer up.Close()
	// Either side ending ends both (API traffic has no half-closed use);
	// so does the forwarder's end.
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// DialLAN connects to address on the lab's LAN from the LAN namespace:
// the way in for tests that talk to the servers themselves rather than
// through the forwarder (a refused dial then means what it says).
func (l *Lab) DialLAN(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := nsrun.Do(netnsPath(l.LAN), func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// APIURL is the API address of a server on the LAN.
func (l *Lab) APIURL(name string) (string, error) {
	m, err := l.Machine(name)
	if err != nil {
		return "", err
	}
	if m.Role != RoleServer {
		return "", fmt.Errorf("lab: %s is not a server", name)
	}
	return l.apiURL(m), nil
}
