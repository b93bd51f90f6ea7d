package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ExecProtocol is the protocol exec upgrades to (client/remotecommand's
// Protocol; the client does not speak it itself).
const ExecProtocol = "skiff-remotecommand.v1"

// ExecOptions say what to run in a container and with which streams.
type ExecOptions struct {
	// Container names the container; empty is fine for a pod with one.
	Container string
	// Command is the command and its arguments (required).
	Command []string
	// Stdin gives the command an input stream; TTY a terminal.
	Stdin bool
	TTY   bool
}

// OpenExec starts a command in a container (POST pods/{name}/exec, relayed
// by the API server to the pod's node) and returns the upgraded connection
// to it, which speaks client/remotecommand's protocol: pass it to
// remotecommand.Run. A refusal (no such container, not running, not
// allowed) is an *api.Status error.
func (c *Client) OpenExec(ctx context.Context, namespace, pod string, opts ExecOptions) (io.ReadWriteCloser, error) {
	if len(opts.Command) == 0 {
		return nil, fmt.Errorf("client: exec in %s/%s: no command", namespace, pod)
	}
	q := url.Values{"command": opts.Command}
	if opts.Container != "" {
		q.Set("container", opts.Container)
	}
	if opts.Stdin {
		q.Set("stdin", "true")
	}
	if opts.TTY {
		q.Set("tty", "true")
	}
	path := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(pod) + "/exec?" + q.Encode()
	h := http.Header{}
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", ExecProtocol)
	resp, err := c.stream(ctx, streamRequest{method: http.MethodPost, path: path, header: h, headerTimeout: c.timeout, http: c.http1()})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, statusError(resp)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("client: exec in %s/%s: the upgraded connection is not writable", namespace, pod)
	}
	return conn, nil
}

// http1 is the client's HTTP client restricted to HTTP/1.1: Go's transport
// sends an Upgrade other than websocket over HTTP/2 when it can, where
// upgrades do not exist. A client given its own http.Client with another
// kind of transport keeps it.
func (c *Client) http1() *http.Client {
	t, ok := c.http.Transport.(*http.Transport)
	if !ok {
		return c.http
	}
	t = t.Clone()
	t.ForceAttemptHTTP2 = false
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	// The upgraded connection is never reused; nothing else is sent here.
	t.DisableKeepAlives = true
	hc := *c.http
	hc.Transport = t
	return &hc
}
