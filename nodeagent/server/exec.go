package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/client/remotecommand"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// exec answers POST /exec/{namespace}/{pod}/{container}?command=...: it
// upgrades the connection to remotecommand.Protocol and runs the command
// in the container with the streams the query asks for (stdin, tty).
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	ns, pod, ctr := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 || cmd[0] == "" {
		writeError(w, http.StatusBadRequest, "you must specify at least one command for the container")
		return
	}
	stdin, err := boolParam(q.Get("stdin"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "stdin: "+err.Error())
		return
	}
	tty, err := boolParam(q.Get("tty"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "tty: "+err.Error())
		return
	}
	if !IsUpgrade(r) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("exec needs a connection upgrade: send Connection: Upgrade and Upgrade: %s", remotecommand.Protocol))
		return
	}
	if s.cfg.Exec == nil {
		writeError(w, http.StatusNotFound, "exec is not supported by this node's runtime")
		return
	}
	ref, err := s.cfg.Containers.Lookup(ns, pod, ctr, false)
	if err != nil {
		s.lookupError(w, ns, pod, ctr, err)
		return
	}
	if !ref.Running {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot exec in a container that is not running: container %q in pod %q", ctr, pod))
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("exec: cannot upgrade this connection: %v", err))
		return
	}
	s.sessions.Add(1)
	defer s.sessions.Done()
	// The server's header and read timeouts must not cut the session.
	_ = conn.SetDeadline(time.Time{})
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", remotecommand.Protocol)
	if err := brw.Flush(); err != nil {
		conn.Close()
		return
	}
	hc := &hijackedConn{Conn: conn, r: brw.Reader}
	opts := remotecommand.ServeOptions{Stdin: stdin, TTY: tty}
	err = remotecommand.Serve(r.Context(), hc, opts, func(ctx context.Context, sess remotecommand.Session) (int, error) {
		req := runtime.ExecRequest{Cmd: cmd, Stdin: sess.Stdin, Stdout: sess.Stdout, Stderr: sess.Stderr, TTY: tty}
		if sess.Resize != nil {
			resize, stop := forwardResize(sess.Resize)
			defer stop()
			req.Resize = resize
		}
		return s.cfg.Exec.Exec(ctx, ref.ID, req)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Info("exec", "namespace", ns, "pod", pod, "container", ctr, "command", cmd, "err", err)
	}
}

// forwardResize turns the session's sizes into the runtime's type until
// stop is called (which waits for the goroutine).
func forwardResize(in <-chan remotecommand.TermSize) (<-chan runtime.TermSize, func()) {
	out := make(chan runtime.TermSize, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case sz := <-in:
				select {
				case <-out: // keep only the newest
				default:
				}
				out <- runtime.TermSize{Width: sz.Width, Height: sz.Height}
			case <-done:
				return
			}
		}
	})
	return out, func() { close(done); wg.Wait() }
}

// IsUpgrade reports a request to upgrade to remotecommand.Protocol.
func IsUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", remotecommand.Protocol)
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hijackedConn reads what the HTTP server buffered before the upgrade
// first, and can close its sending side (TLS close_notify).
type hijackedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *hijackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(remotecommand.CloseWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}
