package bpf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// request is one thing for the client to do.
type request struct {
	Op   string // tcp, udp, udpconn (and tcp6, udp6, udp6conn: IPv4-mapped on AF_INET6), hold, ping, udphold, udp6hold, udpping, udpreconnect, connbench
	Addr string // VIP:port or backend:port
	N    int    // repetitions
	Name string // of a held connection
}

// response is what the client saw.
type response struct {
	// Backends answering, one per connection or datagram ("" where it failed).
	Backends []string
	// Peers: getpeername of each connected socket, or the source address
	// of each reply datagram.
	Peers []string
	// Errs: the error of each attempt ("" for none).
	Errs []string
	// Elapsed of the whole request.
	Elapsed time.Duration
	// Fatal: the client cannot work (not in a test network namespace...).
	Fatal string
}

// clientMain is the re-executed test binary: it refuses to run unless it
// is in the network namespace the test created (testNetnsEnv) and that is
// neither PID 1's (where readable) nor the test process's, then serves
// requests.
func clientMain() int {
	enc := json.NewEncoder(os.Stdout)
	if err := checkTestNetns(); err != nil {
		enc.Encode(response{Fatal: "refusing to run: " + err.Error()})
		return 1
	}
	c := &clientState{held: map[string]net.Conn{}}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			enc.Encode(response{Fatal: err.Error()})
			return 1
		}
		start := time.Now()
		resp := c.serve(req)
		resp.Elapsed = time.Since(start)
		enc.Encode(resp)
	}
	return 0
}

func checkTestNetns() error {
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	var self, want unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return err
	}
	path := os.Getenv(testNetnsEnv)
	if err := unix.Stat(path, &want); err != nil {
		return fmt.Errorf("test network namespace %q: %w", path, err)
	}
	if self.Ino != want.Ino || self.Dev != want.Dev {
		return fmt.Errorf("in %s, not in the test's network namespace %s", own, path)
	}
	if host, err := os.Readlink("/proc/1/ns/net"); err == nil && host == own {
		return fmt.Errorf("in PID 1's network namespace %s", own)
	}
	if own == os.Getenv(testParentNetnsEnv) {
		return fmt.Errorf("in the test process's network namespace %s", own)
	}
	return nil
}

type clientState struct {
	held map[string]net.Conn
}

func (r *response) add(backend, peer string, err error) {
	r.Backends = append(r.Backends, backend)
	r.Peers = append(r.Peers, peer)
	if err != nil {
		r.Errs = append(r.Errs, err.Error())
	} else {
		r.Errs = append(r.Errs, "")
	}
}

func (c *clientState) serve(req request) response {
	var resp response
	switch req.Op {
	case "tcp", "udpconn":
		for range max(req.N, 1) {
			resp.add(roundTrip(req.Op, req.Addr))
		}
	case "udp":
		pc, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			return response{Fatal: err.Error()}
		}
		defer pc.Close()
		dst, _ := net.ResolveUDPAddr("udp4", req.Addr)
		buf := make([]byte, 256)
		for range max(req.N, 1) {
			if _, err := pc.WriteTo([]byte("hi"), dst); err != nil {
				resp.add("", "", err)
				continue
			}
			pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				resp.add("", "", err)
				continue
			}
			resp.add(string(buf[:n]), from.String(), nil)
		}
	case "hold", "udphold", "udp6hold":
		network := "tcp4"
		if req.Op != "hold" {
			network = "udp4"
		}
		var conn net.Conn
		var err error
		if req.Op == "udp6hold" {
			conn, err = dialMapped(unix.SOCK_DGRAM, req.Addr)
		} else {
			conn, err = net.DialTimeout(network, req.Addr, 2*time.Second)
		}
		if err != nil {
			resp.add("", "", err)
			break
		}
		c.held[req.Name] = conn
		resp.add(exchange(conn, network == "tcp4"))
	case "ping":
		conn := c.held[req.Name]
		if conn == nil {
			return response{Fatal: "no held connection " + req.Name}
		}
		resp.add(exchange(conn, false))
	case "udpping":
		// A connected UDP client that reconnects when its socket fails
		// (as a DNS client would): the first attempt's error is reported.
		conn := c.held[req.Name]
		if conn == nil {
			return response{Fatal: "no held connection " + req.Name}
		}
		b, p, err := exchange(conn, false)
		if err != nil {
			conn.Close()
			if conn, err2 := net.DialTimeout("udp4", req.Addr, 2*time.Second); err2 == nil {
				c.held[req.Name] = conn
				b, p, _ = exchange(conn, false)
			}
		}
		resp.add(b, p, err)
	case "tcp6", "udp6conn":
		// Dual-stack sockets (AF_INET6) to the VIP's IPv4-mapped address.
		typ := unix.SOCK_STREAM
		if req.Op == "udp6conn" {
			typ = unix.SOCK_DGRAM
		}
		for range max(req.N, 1) {
			conn, err := dialMapped(typ, req.Addr)
			if err != nil {
				resp.add("", "", err)
				continue
			}
			resp.add(exchange(conn, typ == unix.SOCK_STREAM))
			conn.Close()
		}
	case "udp6":
		for range max(req.N, 1) {
			resp.add(sendMapped(req.Addr))
		}
	case "udpreconnect":
		// One UDP socket connected to the VIP, then straight to the
		// backend it got: the second peer must be the backend itself.
		conn, err := net.DialTimeout("udp4", req.Addr, 2*time.Second)
		if err != nil {
			resp.add("", "", err)
			break
		}
		defer conn.Close()
		backend, peer, err := exchange(conn, false)
		resp.add(backend, peer, err)
		if err != nil {
			break
		}
		ap, _ := netip.ParseAddrPort(backend)
		raw, _ := conn.(*net.UDPConn).SyscallConn()
		var cerr error
		raw.Control(func(fd uintptr) {
			cerr = unix.Connect(int(fd), &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())})
		})
		if cerr != nil {
			resp.add("", "", cerr)
			break
		}
		resp.add(exchange(conn, false))
	case "connbench":
		return connBench(req)
	default:
		return response{Fatal: "unknown op " + req.Op}
	}
	return resp
}

// roundTrip connects, asks the peer its name, and reports what
// getpeername says.
func roundTrip(op, addr string) (string, string, error) {
	network := "tcp4"
	if op == "udpconn" {
		network = "udp4"
	}
	conn, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	return exchange(conn, network == "tcp4")
}

// exchange reads the backend's name: a TCP backend sends it first
// (greeting) or echoes a line; a UDP one answers a datagram.
func exchange(conn net.Conn, greeting bool) (string, string, error) {
	peer, err := getpeername(conn)
	if err != nil {
		return "", "", err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	defer conn.SetDeadline(time.Time{})
	buf := make([]byte, 256)
	if _, isUDP := conn.(*net.UDPConn); isUDP {
		if _, err := conn.Write([]byte("hi")); err != nil {
			return "", peer, err
		}
		n, err := conn.Read(buf)
		if err != nil {
			return "", peer, err
		}
		return string(buf[:n]), peer, nil
	}
	r := bufio.NewReader(conn)
	if !greeting {
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			return "", peer, err
		}
	}
	line, err := r.ReadString('\n')
	return strings.TrimSpace(line), peer, err
}

func mapped(addr string) (*unix.SockaddrInet6, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	return &unix.SockaddrInet6{Addr: netip.AddrFrom16(ap.Addr().As16()).As16(), Port: int(ap.Port())}, nil
}

// dialMapped connects an AF_INET6 socket of type typ to ::ffff:addr.
func dialMapped(typ int, addr string) (net.Conn, error) {
	sa, err := mapped(addr)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "mapped")
	defer f.Close()
	return net.FileConn(f)
}

// sendMapped sends a datagram from an unconnected AF_INET6 socket to
// ::ffff:addr and reports the answer's source.
func sendMapped(addr string) (string, string, error) {
	sa, err := mapped(addr)
	if err != nil {
		return "", "", err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", "", err
	}
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	if err := unix.Sendto(fd, []byte("hi"), 0, sa); err != nil {
		return "", "", err
	}
	buf := make([]byte, 256)
	n, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return "", "", err
	}
	return string(buf[:n]), sockaddrString(from), nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		// An IPv4-mapped peer is shown as IPv4: the tests compare with the VIP.
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)).String()
	}
	return fmt.Sprintf("%T", sa)
}

// getpeername asks the kernel (Go's RemoteAddr is what it was told at dial).
func getpeername(conn net.Conn) (string, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return "", fmt.Errorf("%T has no file descriptor", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return "", err
	}
	var (
		sa   unix.Sockaddr
		serr error
	)
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getpeername(int(fd)) }); err != nil {
		return "", err
	}
	if serr != nil {
		return "", serr
	}
	return sockaddrString(sa), nil
}

// connBench times N connect() calls to Addr with raw sockets, for TCP
// (full handshake with a local backend, closed with RST so no TIME_WAIT
// piles up) and for UDP (connect() alone: the hook and a route lookup).
// It counts the thread's CPU time (schedstat: on-CPU ns, so time spent
// waiting for a CPU on a busy machine is left out), not wall time.
// Backends[0] and [1]: CPU ns per TCP and per UDP connect.
func connBench(req request) response {
	ap, err := netip.ParseAddrPort(req.Addr)
	if err != nil {
		return response{Fatal: err.Error()}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sa := &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	var out response
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM} {
		fds := make([]int, req.N)
		for i := range fds {
			if fds[i], err = unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0); err != nil {
				return response{Fatal: err.Error()}
			}
		}
		start, err := threadCPU()
		if err != nil {
			return response{Fatal: err.Error()}
		}
		for _, fd := range fds {
			if err := unix.Connect(fd, sa); err != nil {
				return response{Fatal: fmt.Sprintf("connect %s: %v", req.Addr, err)}
			}
		}
		end, _ := threadCPU()
		for _, fd := range fds {
			if typ == unix.SOCK_STREAM {
				unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			}
			unix.Close(fd)
		}
		out.Backends = append(out.Backends, fmt.Sprint((end-start)/int64(max(req.N, 1))))
	}
	return out
}

// threadCPU is the calling thread's on-CPU time in ns.
func threadCPU() (int64, error) {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("schedstat: %q", b)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
