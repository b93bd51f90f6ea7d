package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// streamRequest is a request whose body or answer is a stream (logs,
// exec, image archives), which send's retries cannot replay.
type streamRequest struct {
	method, path string
	// body is sent as is (nil: none); contentLength is its size when
	// known (-1: chunked).
	body          io.Reader
	contentLength int64
	header        http.Header
	// headerTimeout bounds the wait for the answer's header (0: none,
	// for requests the server answers only once it has done the work).
	headerTimeout time.Duration
	// http sends the request (nil: the client's).
	http *http.Client
}

// stream sends one streaming request. It moves on to the next server only
// when connecting failed (nothing was sent), and only while the body can
// be sent again (none, or an io.Seeker rewound to where it started); any
// answer, whatever its status, is returned as is. The answer's body lives
// as long as ctx.
func (c *Client) stream(ctx context.Context, sr streamRequest) (*http.Response, error) {
	var start int64
	seeker, _ := sr.body.(io.Seeker)
	if seeker != nil {
		pos, err := seeker.Seek(0, io.SeekCurrent)
		if err != nil {
			seeker = nil
		}
		start = pos
	}
	n := int64(len(c.servers))
	first := c.current.Load()
	var lastErr error
	for attempt := int64(0); attempt < n; attempt++ {
		idx := (first + attempt) % n
		if attempt > 0 && sr.body != nil {
			if seeker == nil {
				break
			}
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				break
			}
		}
		resp, err := c.streamOnce(ctx, c.servers[idx], sr)
		if err == nil {
			c.current.Store(idx)
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil || !notSent(err) {
			break
		}
		c.http.CloseIdleConnections()
	}
	return nil, fmt.Errorf("client: %s %s: %w", sr.method, sr.path, lastErr)
}

func (c *Client) streamOnce(ctx context.Context, server string, sr streamRequest) (*http.Response, error) {
	reqCtx, cancel := context.WithCancel(ctx)
	var body io.Reader
	if sr.body != nil {
		body = io.NopCloser(sr.body) // the caller owns it
	}
	req, err := http.NewRequestWithContext(reqCtx, sr.method, server+sr.path, body)
	if err != nil {
		cancel()
		return nil, err
	}
	if sr.body != nil && sr.contentLength >= 0 {
		req.ContentLength = sr.contentLength
	}
	for k, vs := range sr.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	var timer *time.Timer
	if sr.headerTimeout > 0 {
		timer = time.AfterFunc(sr.headerTimeout, cancel)
	}
	hc := sr.http
	if hc == nil {
		hc = c.http
	}
	resp, err := hc.Do(req)
	if timer != nil && !timer.Stop() {
		// The timer fired: the request's context is gone, with any answer.
		if err == nil {
			resp.Body.Close()
			err = context.DeadlineExceeded
		}
		err = fmt.Errorf("no answer within %v: %w", sr.headerTimeout, err)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &streamBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// streamBody releases the request's context with its body, and keeps the
// writing side of an upgraded connection's body (an io.ReadWriteCloser).
type streamBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (b *streamBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, fmt.Errorf("client: the answer's body is not writable")
}

// statusError reads a failed answer into an *api.Status error and closes
// its body.
func statusError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return decodeStatus(resp, b)
}
