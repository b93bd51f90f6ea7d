package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Failover backoff: after a server fails, wait this long (doubling) before
// trying the next one.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

var jsonUnmarshal = json.Unmarshal

// send sends one request, failing over between servers. Reads (idempotent)
// are retried after any transport error or 502/503/504; writes only when
// the server cannot have received them (connecting failed) or answered 503
// without having started the write. It returns the first other answer, any
// status code, or an error once ctx ends.
func (c *Client) send(ctx context.Context, method, path string, body []byte, idempotent bool) (*http.Response, error) {
	n := int64(len(c.servers))
	start := c.current.Load()
	backoff := minBackoff
	var lastErr error
	for attempt := int64(0); ; attempt++ {
		idx := (start + attempt) % n
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.servers[idx]+path, rd)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		if c.cfg.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, giveUp(ctx, method, path, lastErr, err)
			}
			// Pooled connections to a failed server are likely dead too:
			// drop them, so the next request dials afresh and a refused
			// connection shows the server is gone before anything is sent;
			// and let the next call start with the next server.
			c.http.CloseIdleConnections()
			c.current.CompareAndSwap(idx, (idx+1)%n)
			if !idempotent && !notSent(err) {
				return nil, fmt.Errorf("client: %s %s on %s: %w: %w", method, path, c.servers[idx], ErrUnknownOutcome, err)
			}
			lastErr = err
		case retryable(resp, idempotent):
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			lastErr = decodeStatus(resp, b)
		default:
			c.current.Store(idx)
			return resp, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, giveUp(ctx, method, path, lastErr, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func giveUp(ctx context.Context, method, path string, last, err error) error {
	if last == nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return fmt.Errorf("client: %s %s: %w (last failure: %w)", method, path, context.Cause(ctx), last)
}

// notSent reports a transport error after which the request cannot have
// reached the server: connecting failed, or the server had closed the
// pooled connection while it was idle (net/http's errServerClosedIdle,
// not exported). A reset or EOF after sending is not such an error.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "server closed idle connection")
}

// retryable reports an answer that means "ask another server".
func retryable(resp *http.Response, idempotent bool) bool {
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		// A write that may have been applied is not repeated.
		return idempotent || resp.Header.Get(headerWriteOutcome) != "unknown"
	case http.StatusTooManyRequests:
		return true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// call sends a request bounded by the client's timeout and decodes a 2xx
// JSON answer into out (if non-nil). Error answers become *api.Status.
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	return c.callAs(ctx, method, path, body, out, method == http.MethodGet || method == http.MethodHead)
}

// callAs is call with the request's idempotence given: a request that is
// safe to repeat is retried on the next server after any failure.
func (c *Client) callAs(ctx context.Context, method, path string, body []byte, out any, idempotent bool) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, body, idempotent)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if !idempotent {
			return fmt.Errorf("client: reading answer to %s %s: %w: %w", method, path, ErrUnknownOutcome, err)
		}
		return fmt.Errorf("client: reading answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		st := decodeStatus(resp, b)
		if resp.Header.Get(headerWriteOutcome) == "unknown" {
			return fmt.Errorf("%w: %w", ErrUnknownOutcome, st)
		}
		return st
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: decoding answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Raw sends one request (with failover, like every call) and returns the
// answer as is, whatever its status; the caller closes its body. GET and
// HEAD are retried on any transport error, other methods only when they
// cannot have been received. Meant for tests and benchmarks.
func (c *Client) Raw(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	return c.send(ctx, method, path, body, method == http.MethodGet || method == http.MethodHead)
}
