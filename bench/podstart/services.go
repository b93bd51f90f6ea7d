package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// The service phase times `skiff apply` of a new Service whose pods are
// already Ready → the first HTTP answer through its ClusterIP, as a pod
// sees it: the client is a process in a cgroup under the pods' parent
// (where the node's connect hooks are attached) in the node's network
// namespace. Side by side, in the same runs, the control plane's share:
// create → the bench's own Endpoints watch shows the pods' addresses.

const (
	// clientEnv makes the program the service phase's client; its value
	// is the cgroup v2 directory to join.
	clientEnv = "SKIFF_PODSTART_CLIENT_CGROUP"
	// svcApp is the service phase's Deployment.
	svcApp = "ps-svc"
	// svcReplicas is how many pods back each Service.
	svcReplicas = 3
	// clientPoll is the client's pause between failed attempts.
	clientPoll = time.Millisecond
	// serviceTarget is issue 6's figure for apply → first answer, p99.
	serviceTarget = 100 * time.Millisecond
)

// serviceResult is what the service phase measured.
type serviceResult struct {
	connect   dist // create → first HTTP answer through the ClusterIP
	endpoints dist // create → Endpoints with every pod's address in a watch
	ratio     dist // per run: connect / endpoints
	attempts  dist // the client's attempts per service, held as that many milliseconds (summarize takes durations)
	failed    int
}

// cgroupV2Root is where the cgroup v2 hierarchy is mounted: the "unified"
// mount of a hybrid host, or /sys/fs/cgroup itself.
func cgroupV2Root() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

// measureServices deploys svcReplicas echo pods, then n times creates a
// Service over them and times until a client pod's request through the
// ClusterIP is answered, deleting the Service after each run.
func measureServices(ctx context.Context, o options, n *node, tr *tracker, sb sandbox) (*serviceResult, error) {
	obj, err := api.DecodeObject([]byte(deploymentJSON(svcApp, svcReplicas, 0)))
	if err != nil {
		return nil, err
	}
	if _, err := n.client.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("create deployment %s: %w", svcApp, err)
	}
	defer func() {
		n.client.Delete(context.WithoutCancel(ctx), api.KindDeployment, "default", svcApp, client.DeleteOptions{})
		tr.waitGone(context.WithoutCancel(ctx), svcApp, o.timeout)
	}()
	if _, err := tr.waitReady(ctx, svcApp, svcReplicas, o.timeout); err != nil {
		return nil, err
	}
	cl, err := startClient(filepath.Join(cgroupV2Root(), sb.cgroupParent(), "bench-client"))
	if err != nil {
		return nil, err
	}
	defer cl.close()
	eps, err := n.client.Watch(ctx, api.KindEndpoints, client.ListOptions{Namespace: "default"}, "")
	if err != nil {
		return nil, fmt.Errorf("watch endpoints: %w", err)
	}
	defer eps.Stop()

	res := &serviceResult{}
	var connect, endpoints, ratio, attempts []time.Duration
	for i := range o.services {
		name := fmt.Sprintf("ps-svc-%03d", i)
		c, e, a, err := serviceOnce(ctx, n, cl, eps, name)
		if err != nil {
			res.failed++
			fmt.Fprintf(os.Stderr, "#   service %s: %v\n", name, err)
			if res.failed > 3 {
				return nil, fmt.Errorf("service phase: %d failures, the last: %w\nagent log:\n%s", res.failed, err, n.agent.LogTail(20))
			}
			continue
		}
		connect, endpoints, attempts = append(connect, c), append(endpoints, e), append(attempts, time.Duration(a)*time.Millisecond)
		ratio = append(ratio, time.Duration(float64(c)/float64(e)*1000)) // the ratio in thousandths (summarize takes durations)
	}
	res.connect, res.endpoints, res.ratio, res.attempts = summarize(connect), summarize(endpoints), summarize(ratio), summarize(attempts)
	return res, nil
}

func serviceJSON(name string) string {
	return `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `","namespace":"default","labels":{"` + benchLabel + `":"podstart"}},` +
		`"spec":{"selector":{"app":"` + svcApp + `"},"ports":[{"name":"http","port":80,"targetPort":8080}]}}`
}

// serviceOnce creates Service name, waits for the client's answer through
// its ClusterIP and for the Endpoints in eps, and deletes the Service.
func serviceOnce(ctx context.Context, n *node, cl *svcClient, eps *client.Watch, name string) (connect, endpoints time.Duration, attempts int, err error) {
	obj, err := api.DecodeObject([]byte(serviceJSON(name)))
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	created, err := n.client.Create(ctx, obj)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("create: %w", err)
	}
	defer n.client.Delete(context.WithoutCancel(ctx), api.KindService, "default", name, client.DeleteOptions{})
	vip := created.(*api.Service).Spec.ClusterIP
	answered := make(chan clientAnswer, 1)
	go func() { answered <- cl.ask(net.JoinHostPort(vip, "80")) }()

	deadline := time.After(30 * time.Second)
	var got clientAnswer
	haveAnswer := false
	for endpoints == 0 || !haveAnswer {
		select {
		case ev, ok := <-eps.Events():
			if !ok {
				return 0, 0, 0, fmt.Errorf("endpoints watch ended: %v", eps.Err())
			}
			if e, isEP := ev.Object.(*api.Endpoints); isEP && e.Name == name && endpoints == 0 && readyAddresses(e) >= svcReplicas {
				endpoints = time.Since(t0)
			}
		case got = <-answered:
			haveAnswer = true
			if got.err != nil {
				return 0, 0, 0, got.err
			}
			connect = got.at.Sub(t0)
		case <-deadline:
			return 0, 0, 0, fmt.Errorf("ClusterIP %s: no answer and/or no Endpoints after 30s (endpoints seen after %v)", vip, endpoints)
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		}
	}
	return connect, endpoints, got.attempts, nil
}

func readyAddresses(e *api.Endpoints) int {
	n := 0
	for _, ss := range e.Subsets {
		n += len(ss.Addresses)
	}
	return n
}

// svcClient is the client process: one line in (a VIP:port), one line out
// ("ok ATTEMPTS" or "error ...") per request.
type svcClient struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	cgroup string
}

type clientAnswer struct {
	at       time.Time
	attempts int
	err      error
}

func startClient(cgroup string) (*svcClient, error) {
	if err := os.Mkdir(cgroup, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("client cgroup: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), clientEnv+"="+cgroup)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client: %w", err)
	}
	c := &svcClient{cmd: cmd, in: in, out: bufio.NewReader(out), cgroup: cgroup}
	if line, err := c.out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		c.close()
		return nil, fmt.Errorf("the client did not start: %q %v", line, err)
	}
	return c, nil
}

func (c *svcClient) ask(addr string) clientAnswer {
	if _, err := fmt.Fprintln(c.in, addr); err != nil {
		return clientAnswer{err: fmt.Errorf("client: %w", err)}
	}
	line, err := c.out.ReadString('\n')
	at := time.Now()
	if err != nil {
		return clientAnswer{err: fmt.Errorf("client: %w", err)}
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "ok" {
		return clientAnswer{err: fmt.Errorf("client: %s", strings.TrimSpace(line))}
	}
	a, _ := strconv.Atoi(f[1])
	return clientAnswer{at: at, attempts: a}
}

func (c *svcClient) close() {
	c.in.Close()
	c.cmd.Wait()
	os.Remove(c.cgroup)
}

// runClient is the client process: it joins the cgroup, then for each
// address read from stdin requests http://ADDR/ until one is answered
// (30 s at most) and prints "ok ATTEMPTS".
func runClient(cgroup string) int {
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "podstart client: join cgroup:", err)
		return 1
	}
	hc := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		addr := in.Text()
		deadline := time.Now().Add(30 * time.Second)
		var last error
		attempts := 0
		for time.Now().Before(deadline) {
			attempts++
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			last = err
			time.Sleep(clientPoll)
		}
		if time.Now().After(deadline) {
			fmt.Printf("error %s: no answer after 30s and %d attempts: %v\n", addr, attempts, last)
			continue
		}
		fmt.Printf("ok %d\n", attempts)
	}
	return 0
}

func (r *serviceResult) print(o options) {
	fmt.Printf("# service start: create of a Service over %d Ready pods → first HTTP answer through its ClusterIP from a\n", svcReplicas)
	fmt.Printf("#   client process in the pods' cgroup parent and the node's network namespace (what a client pod sees; the\n")
	fmt.Printf("#   client retries every %v); baseline, same runs: create → the Endpoints with every address in a watch\n", clientPoll)
	fmt.Printf("%-32s %5s %9s %9s %9s %9s\n", "", "n", "p50", "p90", "p99", "max")
	row := func(name string, d dist, scale func(time.Duration) string) {
		fmt.Printf("%-32s %5d %9s %9s %9s %9s\n", name, d.n, scale(d.p50), scale(d.p90), scale(d.p99), scale(d.max))
	}
	msf := func(d time.Duration) string { return fmt.Sprintf("%.1fms", ms(d)) }
	row("apply → first answer", r.connect, msf)
	row("apply → Endpoints (baseline)", r.endpoints, msf)
	row("ratio first answer / Endpoints", r.ratio, func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1000) })
	row("client attempts", r.attempts, func(d time.Duration) string { return strconv.Itoa(int(d / time.Millisecond)) })
	if r.failed > 0 {
		fmt.Printf("# %d of %d services failed (errors above)\n", r.failed, o.services)
	}
	verdict := "met"
	if r.connect.p99 > serviceTarget || r.failed > 0 {
		verdict = "MISSED"
	}
	fmt.Printf("# target apply → first answer p99 ≤ %v: %.1f ms, %s\n", serviceTarget, ms(r.connect.p99), verdict)
}
