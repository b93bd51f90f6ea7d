package proxytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/network/nsrun"
)

// The client process's environment.
const (
	roleEnv   = "SKIFF_PROXYTEST_ROLE"
	nsEnv     = "SKIFF_PROXYTEST_NETNS"
	cgroupEnv = "SKIFF_PROXYTEST_CGROUP"
)

// Main runs the tests, or, in a process that StartClient or
// StartProxierProcess started from this test binary, the client or the
// proxier. Call it from TestMain:
//
//	func TestMain(m *testing.M) { proxytest.Main(m) }
func Main(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "client":
		os.Exit(clientMain(os.Stdin, os.Stdout))
	case "proxier":
		os.Exit(proxierMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// Result is the outcome of one request of a client.
type Result struct {
	// Backend is the name the backend answered ("" on error).
	Backend string `json:"backend,omitempty"`
	// Peer is the address the client saw as its peer: getpeername of a
	// connected socket, the source of the reply to an unconnected one.
	Peer string `json:"peer,omitempty"`
	// Err is the error, if any; Refused says it was ECONNREFUSED.
	Err     string        `json:"err,omitempty"`
	Refused bool          `json:"refused,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

type request struct {
	Op        string        `json:"op"` // tcp, udp, udp-open, udp-ask
	Addr      string        `json:"addr,omitempty"`
	N         int           `json:"n,omitempty"`
	Connected bool          `json:"connected,omitempty"`
	ID        int           `json:"id,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
}

type response struct {
	Results []Result `json:"results,omitempty"`
	// Count is how many requests a stream made.
	Count int    `json:"count,omitempty"`
	Err   string `json:"err,omitempty"`
}

// Client is a client process in the test namespace (and cgroup). Its
// methods fail the test they are given when the client process fails.
type Client struct {
	mu  sync.Mutex
	enc *json.Encoder
	dec *json.Decoder
	ids int
}

// StartClient starts a client process: this test binary re-executed,
// forked from a thread inside the namespace and, when the Env has a
// cgroup, cloned straight into its ClientCgroup. It is killed when the test ends.
func (e *Env) StartClient(t testing.TB) *Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=client", nsEnv+"="+e.NS.Path, cgroupEnv+"="+e.ClientCgroup)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if e.ClientCgroup != "" {
		fd, err := unix.Open(e.ClientCgroup, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open cgroup: %v", err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.spawn.start(cmd); err != nil {
		t.Fatalf("start client: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill() // by PID: the process this test started
		cmd.Wait()
	})
	c := &Client{enc: json.NewEncoder(stdin), dec: json.NewDecoder(bufio.NewReader(stdout))}
	if _, err := c.do(request{Op: "ping"}); err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func (c *Client) do(req request) ([]Result, error) {
	resp, err := c.roundTrip(req)
	return resp.Results, err
}

func (c *Client) roundTrip(req request) (response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enc.Encode(req); err != nil {
		return response{}, fmt.Errorf("client %s: send: %w", req.Op, err)
	}
	var resp response
	if err := c.dec.Decode(&resp); err != nil {
		return response{}, fmt.Errorf("client %s: receive: %w", req.Op, err)
	}
	if resp.Err != "" {
		return response{}, fmt.Errorf("client %s: %s", req.Op, resp.Err)
	}
	return resp, nil
}

func (c *Client) nextID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids++
	return c.ids
}

func (c *Client) must(t testing.TB, req request) []Result {
	t.Helper()
	rs, err := c.do(req)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TCP makes n connections to addr, one after another; each sends a line,
// reads the answer and closes.
func (c *Client) TCP(t testing.TB, addr netip.AddrPort, n int) []Result {
	t.Helper()
	return c.must(t, request{Op: "tcp", Addr: addr.String(), N: n})
}

// UDP sends n requests to addr, each from a new socket: connected (the
// peer is getpeername) or not (the peer is the reply's source).
func (c *Client) UDP(t testing.TB, addr netip.AddrPort, n int, connected bool) []Result {
	t.Helper()
	return c.must(t, request{Op: "udp", Addr: addr.String(), N: n, Connected: connected})
}

// OpenUDP opens a long-lived connected UDP socket to addr and returns its
// id for AskUDP.
func (c *Client) OpenUDP(t testing.TB, addr netip.AddrPort) int {
	t.Helper()
	id := c.nextID()
	c.must(t, request{Op: "udp-open", Addr: addr.String(), ID: id})
	return id
}

// AskUDP sends a request on the long-lived socket id and waits up to
// timeout for the answer. A socket that fails (destroyed by stale-flow
// cleanup, say) is reconnected, as a real client would, and the failure
// returned; the next ask uses the new socket.
func (c *Client) AskUDP(t testing.TB, id int, timeout time.Duration) Result {
	t.Helper()
	return c.must(t, request{Op: "udp-ask", ID: id, Timeout: timeout})[0]
}

// OpenTCP opens a long-lived TCP connection to addr and returns its id
// for AskTCP.
func (c *Client) OpenTCP(t testing.TB, addr netip.AddrPort) int {
	t.Helper()
	id := c.nextID()
	c.must(t, request{Op: "tcp-open", Addr: addr.String(), ID: id})
	return id
}

// AskTCP sends a line on the long-lived connection id and reads the
// answer (no reconnect: a failure is the connection's).
func (c *Client) AskTCP(t testing.TB, id int) Result {
	t.Helper()
	return c.must(t, request{Op: "tcp-ask", ID: id})[0]
}

// StartStream starts making short TCP connections to addr, one after
// another, in the background until StopStream.
func (c *Client) StartStream(t testing.TB, addr netip.AddrPort) int {
	t.Helper()
	id := c.nextID()
	c.must(t, request{Op: "stream-start", Addr: addr.String(), ID: id})
	return id
}

// StopStream stops stream id and returns how many connections it made
// and the failed ones.
func (c *Client) StopStream(t testing.TB, id int) (int, []Result) {
	t.Helper()
	resp, err := c.roundTrip(request{Op: "stream-stop", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count, resp.Results
}

// clientMain serves requests from r until it closes. It refuses to run in
// the machine's own network namespace or outside the test's cgroup.
func clientMain(r io.Reader, w io.Writer) int {
	if err := checkPlacement(); err != nil {
		fmt.Fprintln(os.Stderr, "proxytest client:", err)
		return 2
	}
	cl := &clientState{udp: map[int]*udpSock{}, tcp: map[int]*tcpConn{}, streams: map[int]*stream{}}
	dec := json.NewDecoder(bufio.NewReader(r))
	enc := json.NewEncoder(w)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return 0
		}
		var resp response
		var err error
		if req.Op == "stream-stop" {
			resp, err = cl.stopStream(req.ID)
		} else {
			resp.Results, err = cl.serve(req)
		}
		if err != nil {
			resp.Err = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			return 1
		}
	}
}

// checkPlacement makes sure the process is in the test's namespace, not
// the machine's, and in the test's cgroup when it has one (lab rule 3).
func checkPlacement() error {
	want := os.Getenv(nsEnv)
	if want == "" {
		return errors.New("no test namespace given")
	}
	host, err := nsrun.InHostNetNS()
	if err != nil {
		return err
	}
	var self, target unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return err
	}
	if err := unix.Stat(want, &target); err != nil {
		return err
	}
	if host || self.Ino != target.Ino || self.Dev != target.Dev {
		return fmt.Errorf("not in the test namespace %s: refusing to send traffic", want)
	}
	cg := os.Getenv(cgroupEnv)
	if cg == "" {
		return nil
	}
	rel, err := filepath.Rel(CgroupRoot, cg)
	if err != nil {
		return err
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v2, ok := strings.CutPrefix(line, "0::"); ok {
			if v2 != "/"+rel {
				return fmt.Errorf("in cgroup %s, not the test's /%s: refusing to send traffic", v2, rel)
			}
			return nil
		}
	}
	return errors.New("no cgroup v2 line in /proc/self/cgroup")
}

type clientState struct {
	udp     map[int]*udpSock
	tcp     map[int]*tcpConn
	streams map[int]*stream
}

type tcpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// stream makes short connections until stopped.
type stream struct {
	stop   chan struct{}
	done   chan struct{}
	count  int
	failed []Result
}

func (cl *clientState) stopStream(id int) (response, error) {
	s := cl.streams[id]
	if s == nil {
		return response{}, fmt.Errorf("no stream %d", id)
	}
	delete(cl.streams, id)
	close(s.stop)
	<-s.done
	return response{Count: s.count, Results: s.failed}, nil
}

type udpSock struct {
	addr *net.UDPAddr
	conn *net.UDPConn
}

const ioTimeout = 2 * time.Second

func (cl *clientState) serve(req request) ([]Result, error) {
	switch req.Op {
	case "ping":
		return nil, nil
	case "tcp", "udp":
		addr, err := net.ResolveUDPAddr("udp4", req.Addr) // only parses: an IP literal
		if err != nil {
			return nil, err
		}
		out := make([]Result, 0, req.N)
		for range req.N {
			if req.Op == "tcp" {
				out = append(out, askTCP(addr.AddrPort()))
			} else {
				out = append(out, askUDP(addr, req.Connected))
			}
		}
		return out, nil
	case "udp-open":
		addr, err := net.ResolveUDPAddr("udp4", req.Addr)
		if err != nil {
			return nil, err
		}
		s := &udpSock{addr: addr}
		if s.conn, err = net.DialUDP("udp4", nil, addr); err != nil {
			return nil, err
		}
		cl.udp[req.ID] = s
		return nil, nil
	case "tcp-open":
		c, err := net.DialTimeout("tcp4", req.Addr, ioTimeout)
		if err != nil {
			return nil, err
		}
		cl.tcp[req.ID] = &tcpConn{conn: c, r: bufio.NewReader(c)}
		return nil, nil
	case "tcp-ask":
		tc := cl.tcp[req.ID]
		if tc == nil {
			return nil, fmt.Errorf("no connection %d", req.ID)
		}
		start := time.Now()
		tc.conn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := tc.conn.Write([]byte("?\n")); err != nil {
			return []Result{fail(Result{}, start, err)}, nil
		}
		line, err := tc.r.ReadString('\n')
		if err != nil {
			return []Result{fail(Result{}, start, err)}, nil
		}
		return []Result{{Backend: strings.TrimSpace(line), Peer: peerName(tc.conn.(syscall.Conn)), Elapsed: time.Since(start)}}, nil
	case "stream-start":
		addr, err := netip.ParseAddrPort(req.Addr)
		if err != nil {
			return nil, err
		}
		s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
		cl.streams[req.ID] = s
		go func() {
			defer close(s.done)
			for {
				select {
				case <-s.stop:
					return
				default:
				}
				r := askTCP(addr)
				s.count++
				if r.Err != "" {
					s.failed = append(s.failed, r)
				}
			}
		}()
		return nil, nil
	case "udp-ask":
		s := cl.udp[req.ID]
		if s == nil {
			return nil, fmt.Errorf("no socket %d", req.ID)
		}
		return []Result{s.ask(req.Timeout)}, nil
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

func fail(res Result, start time.Time, err error) Result {
	res.Err = err.Error()
	res.Refused = errors.Is(err, syscall.ECONNREFUSED)
	res.Elapsed = time.Since(start)
	return res
}

func askTCP(addr netip.AddrPort) Result {
	start := time.Now()
	c, err := net.DialTimeout("tcp4", addr.String(), ioTimeout)
	if err != nil {
		return fail(Result{}, start, err)
	}
	defer c.Close()
	res := Result{Peer: peerName(c.(syscall.Conn))}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte("?\n")); err != nil {
		return fail(res, start, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fail(res, start, err)
	}
	res.Backend = strings.TrimSpace(line)
	res.Elapsed = time.Since(start)
	return res
}

func askUDP(addr *net.UDPAddr, connected bool) Result {
	start := time.Now()
	buf := make([]byte, 512)
	if connected {
		c, err := net.DialUDP("udp4", nil, addr)
		if err != nil {
			return fail(Result{}, start, err)
		}
		defer c.Close()
		res := Result{Peer: peerName(c)}
		c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write([]byte("?")); err != nil {
			return fail(res, start, err)
		}
		n, err := c.Read(buf)
		if err != nil {
			return fail(res, start, err)
		}
		res.Backend = string(buf[:n])
		res.Elapsed = time.Since(start)
		return res
	}
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return fail(Result{}, start, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.WriteToUDP([]byte("?"), addr); err != nil {
		return fail(Result{}, start, err)
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return fail(Result{}, start, err)
	}
	return Result{Backend: string(buf[:n]), Peer: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()).String(), Elapsed: time.Since(start)}
}

// ask sends on the long-lived socket; on failure it reconnects.
func (s *udpSock) ask(timeout time.Duration) Result {
	start := time.Now()
	if timeout <= 0 {
		timeout = ioTimeout
	}
	res, err := func() (Result, error) {
		if s.conn == nil {
			c, err := net.DialUDP("udp4", nil, s.addr)
			if err != nil {
				return Result{}, err
			}
			s.conn = c
		}
		res := Result{Peer: peerName(s.conn)}
		s.conn.SetDeadline(time.Now().Add(timeout))
		if _, err := s.conn.Write([]byte("?")); err != nil {
			return res, err
		}
		buf := make([]byte, 512)
		n, err := s.conn.Read(buf)
		if err != nil {
			return res, err
		}
		res.Backend = string(buf[:n])
		return res, nil
	}()
	if err != nil {
		if s.conn != nil {
			s.conn.Close()
			s.conn = nil
		}
		return fail(res, start, err)
	}
	res.Elapsed = time.Since(start)
	return res
}

// peerName is getpeername(2) of the socket, as addr:port.
func peerName(c syscall.Conn) string {
	rc, err := c.SyscallConn()
	if err != nil {
		return "error: " + err.Error()
	}
	var sa unix.Sockaddr
	var gerr error
	if err := rc.Control(func(fd uintptr) { sa, gerr = unix.Getpeername(int(fd)) }); err != nil {
		return "error: " + err.Error()
	}
	if gerr != nil {
		return "error: " + gerr.Error()
	}
	if in4, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)).String()
	}
	return fmt.Sprintf("%T", sa)
}
