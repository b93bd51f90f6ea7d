package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// maxOutput is how much of an HTTP body or exec output a probe keeps (the
// kubelet's limit).
const maxOutput = 10 << 10

// maxRedirects is how many same-host redirects an HTTP probe follows.
const maxRedirects = 10

// DefaultUserAgent is the User-Agent of HTTP probes: "kube-probe/" first,
// as applications that recognise the kubelet's probes look for it.
const DefaultUserAgent = "kube-probe/skiff"

// errNotNow means a probe could not run at this moment (no pod IP yet, the
// container is not running, the worker is stopping): it is skipped, not
// counted.
var errNotNow = errors.New("cannot probe now")

// target is what one probe run needs.
type target struct {
	kind        Kind
	spec        api.Probe
	podIP       string
	containerID runtime.ContainerID
	ports       []api.ContainerPort
}

// outcome is the verdict of one probe run.
type outcome struct {
	result Result // Success or Failure
	output string // the body, the command's output or the error
	// errored: the probe could not be run as specified (a named port the
	// container lacks, a command that does not exist); it counts as a
	// failure with a "probe errored" message.
	errored bool
	// warning: a success with something to say (a redirect to another
	// host was not followed).
	warning bool
}

func failed(format string, args ...any) outcome {
	return outcome{result: Failure, output: fmt.Sprintf(format, args...)}
}

func errored(err error) outcome {
	return outcome{result: Failure, output: err.Error(), errored: true}
}

// prober runs one probe. An error (wrapping errNotNow) means it was not
// run; the worker's tests replace it with a script.
type prober interface {
	probe(ctx context.Context, t target) (outcome, error)
}

// checker runs probes over the network and through the runtime.
type checker struct {
	transport *http.Transport
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	exec      runtime.Execer
	userAgent string
}

var _ prober = (*checker)(nil)

func newChecker(cfg Config) *checker {
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &checker{
		transport: &http.Transport{
			Proxy:       nil, // never through a proxy from the agent's environment
			DialContext: dial,
			// A new connection for every probe, closed after it, as the
			// kubelet does: a kept-alive connection would probe a process
			// that may have stopped accepting new ones.
			DisableKeepAlives: true,
			// Probes check health, not identity (the kubelet's rule).
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		},
		dial:      dial,
		exec:      cfg.Execer,
		userAgent: ua,
	}
}

func (c *checker) probe(ctx context.Context, t target) (outcome, error) {
	timeout := seconds(t.spec.TimeoutSeconds)
	switch {
	case t.spec.HTTPGet != nil:
		return c.httpGet(ctx, t, timeout)
	case t.spec.TCPSocket != nil:
		return c.tcpSocket(ctx, t, timeout)
	case t.spec.Exec != nil:
		return c.execCmd(ctx, t, timeout)
	}
	return errored(errors.New("the probe has no handler (exec, httpGet or tcpSocket)")), nil
}

// hostPort returns the address a network probe connects to.
func hostPort(host string, port api.IntOrString, t target) (string, error) {
	if host == "" {
		host = t.podIP
		if host == "" {
			return "", fmt.Errorf("%w: the pod has no IP yet", errNotNow)
		}
	}
	p, err := resolvePort(port, t.ports)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// resolvePort returns a port number, looking a name up in the
// container's ports.
func resolvePort(port api.IntOrString, ports []api.ContainerPort) (int, error) {
	if port.Type == api.IntOrStringString {
		for _, p := range ports {
			if p.Name == port.StrVal {
				return int(p.ContainerPort), nil
			}
		}
		return 0, fmt.Errorf("port %q is not among the container's ports", port.StrVal)
	}
	if port.IntVal < 1 || port.IntVal > 65535 {
		return 0, fmt.Errorf("port %d is out of range", port.IntVal)
	}
	return int(port.IntVal), nil
}

// stopping turns a run cut short by the worker stopping into errNotNow.
func stopping(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", errNotNow, context.Cause(ctx))
	}
	return nil
}

func (c *checker) httpGet(ctx context.Context, t target, timeout time.Duration) (outcome, error) {
	h := t.spec.HTTPGet
	addr, err := hostPort(h.Host, h.Port, t)
	if errors.Is(err, errNotNow) {
		return outcome{}, err
	}
	if err != nil {
		return errored(err), nil
	}
	u, err := url.Parse(h.Path)
	if err != nil {
		u = &url.URL{Path: h.Path}
	}
	u.Scheme = strings.ToLower(string(h.Scheme))
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	u.Host = addr
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errored(err), nil
	}
	for _, hd := range h.HTTPHeaders {
		req.Header.Add(hd.Name, hd.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	} else if req.Header.Get("Accept") == "" {
		req.Header.Del("Accept") // an empty Accept header asks for none
	}
	req.Host = req.Header.Get("Host")

	client := &http.Client{
		Transport: c.transport,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		if err := stopping(ctx); err != nil {
			return outcome{}, err
		}
		return failed("%v", err), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	if err != nil {
		if err := stopping(ctx); err != nil {
			return outcome{}, err
		}
		return failed("read the answer: %v", err), nil
	}
	switch code := resp.StatusCode; {
	case code >= 300 && code < 400:
		// A redirect the probe did not follow (to another host).
		return outcome{result: Success, warning: true, output: "Probe terminated redirects, Response body: " + string(body)}, nil
	case code >= 200 && code < 300:
		return outcome{result: Success, output: string(body)}, nil
	default:
		return failed("HTTP probe failed with statuscode: %d", code), nil
	}
}

func (c *checker) tcpSocket(ctx context.Context, t target, timeout time.Duration) (outcome, error) {
	h := t.spec.TCPSocket
	addr, err := hostPort(h.Host, h.Port, t)
	if errors.Is(err, errNotNow) {
		return outcome{}, err
	}
	if err != nil {
		return errored(err), nil
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.dial(dctx, "tcp", addr)
	if err != nil {
		if err := stopping(ctx); err != nil {
			return outcome{}, err
		}
		return failed("%v", err), nil
	}
	conn.Close()
	return outcome{result: Success}, nil
}

func (c *checker) execCmd(ctx context.Context, t target, timeout time.Duration) (outcome, error) {
	cmd := t.spec.Exec.Command
	if c.exec == nil {
		return errored(errors.New("this node's runtime cannot exec in containers")), nil
	}
	if t.containerID == "" {
		return outcome{}, fmt.Errorf("%w: no running container", errNotNow)
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out capped
	code, err := c.exec.Exec(ectx, t.containerID, runtime.ExecRequest{Cmd: cmd, Stdout: &out, Stderr: &out})
	if err := stopping(ctx); err != nil {
		return outcome{}, err
	}
	if errors.Is(ectx.Err(), context.DeadlineExceeded) {
		return failed("command %q timed out", strings.Join(cmd, " ")), nil
	}
	if errors.Is(err, runtime.ErrInvalidState) || errors.Is(err, runtime.ErrNotFound) {
		return outcome{}, fmt.Errorf("%w: %w", errNotNow, err)
	}
	if err != nil {
		return errored(err), nil
	}
	if code != 0 {
		if out.String() == "" {
			return failed("command %q exited with %d", strings.Join(cmd, " "), code), nil
		}
		return failed("%s", out.String()), nil
	}
	return outcome{result: Success, output: out.String()}, nil
}

// capped keeps the first maxOutput bytes written to it and accepts (and
// drops) the rest, so a chatty command never sees a write error. Stdout
// and stderr may write concurrently.
type capped struct {
	mu  sync.Mutex
	buf []byte
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxOutput - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}
