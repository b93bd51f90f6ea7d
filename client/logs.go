package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// LogOptions select a container's log, as kubectl logs' flags do.
type LogOptions struct {
	// Container names the container; empty is fine for a pod with one.
	Container string
	// Follow streams new lines until the container stops or ctx ends.
	Follow bool
	// TailLines is how many of the last lines to show (nil: all).
	TailLines *int64
	// Previous shows the instance before the current one (after a
	// restart).
	Previous bool
	// Timestamps prefixes each line with its RFC 3339 timestamp.
	Timestamps bool
	// SinceSeconds shows only lines of the last so many seconds (0: all).
	SinceSeconds int64
}

// Logs writes a container's log to out (GET pods/{name}/log, relayed by
// the API server from the pod's node). It returns once the log ends: at
// once without Follow, when the container stops or ctx ends with it
// (ctx's end is not an error then). Errors before the first byte are
// *api.Status errors with the server's message ("a container name must be
// specified for pod web, choose one of: [a b]").
func (c *Client) Logs(ctx context.Context, namespace, pod string, opts LogOptions, out io.Writer) error {
	q := url.Values{}
	if opts.Container != "" {
		q.Set("container", opts.Container)
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.TailLines != nil {
		q.Set("tailLines", strconv.FormatInt(*opts.TailLines, 10))
	}
	if opts.Previous {
		q.Set("previous", "true")
	}
	if opts.Timestamps {
		q.Set("timestamps", "true")
	}
	if opts.SinceSeconds > 0 {
		q.Set("sinceSeconds", strconv.FormatInt(opts.SinceSeconds, 10))
	}
	path := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(pod) + "/log?" + q.Encode()
	resp, err := c.stream(ctx, streamRequest{method: http.MethodGet, path: path, headerTimeout: c.timeout})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		if opts.Follow && ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("client: reading the log of %s/%s: %w", namespace, pod, err)
	}
	return nil
}
