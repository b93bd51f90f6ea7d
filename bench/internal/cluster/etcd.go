package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdMember is one etcd process.
type EtcdMember struct {
	Name      string
	DataDir   string
	ClientURL string
	PeerURL   string
	Proc      *Proc
	args      []string
}

// Etcd is a local etcd cluster, the baseline skiff's Raft store is
// measured against.
type Etcd struct {
	Bin     string
	Members []*EtcdMember
	reaper  *Reaper
}

// EtcdVersion returns the first line of `etcd --version`.
func EtcdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// StartEtcd starts an n-member cluster with extra flags on every member
// (e.g. --heartbeat-interval=50) and returns once a leader is elected.
func StartEtcd(ctx context.Context, r *Reaper, bin string, n int, extraArgs ...string) (*Etcd, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("etcd binary: %w (apt-get install -y etcd-server)", err)
	}
	root, err := r.TempDir("etcd-bench-")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	e := &Etcd{Bin: bin, reaper: r}
	var initial []string
	for i := range n {
		m := &EtcdMember{
			Name:      "e" + strconv.Itoa(i+1),
			DataDir:   filepath.Join(root, "e"+strconv.Itoa(i+1)),
			ClientURL: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			PeerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
		}
		e.Members = append(e.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	token := fmt.Sprintf("skiff-bench-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range e.Members {
		m.args = append([]string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
		}, extraArgs...)
		if m.Proc, err = r.Start("etcd-"+m.Name, filepath.Join(root, m.Name+".log"), bin, m.args...); err != nil {
			return nil, err
		}
	}
	if _, err := e.Leader(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

// Client returns an etcd client connected to the given endpoints only.
// maxRetries caps the client's own retries of an RPC (0: its default).
func Client(maxRetries uint, endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxUnaryRetries:    maxRetries,
		BackoffWaitBetween: 5 * time.Millisecond,
	})
}

// EtcdStatus is one member's answer to Status.
type EtcdStatus struct {
	Member           *EtcdMember
	ID, Leader       uint64
	RaftIndex        uint64
	RaftAppliedIndex uint64
}

// Status asks one member for its status.
func (e *Etcd) Status(ctx context.Context, m *EtcdMember) (EtcdStatus, error) {
	c, err := Client(1, m.ClientURL)
	if err != nil {
		return EtcdStatus{}, err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := c.Status(sctx, m.ClientURL)
	if err != nil {
		return EtcdStatus{}, err
	}
	return EtcdStatus{Member: m, ID: st.Header.MemberId, Leader: st.Leader, RaftIndex: st.RaftIndex, RaftAppliedIndex: st.RaftAppliedIndex}, nil
}

// Leader returns the member that every running member names as leader.
func (e *Etcd) Leader(ctx context.Context, timeout time.Duration) (*EtcdMember, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var sts []EtcdStatus
		for _, m := range e.Members {
			if !m.Proc.Running() {
				continue
			}
			st, err := e.Status(ctx, m)
			if err != nil {
				last = err
				sts = nil
				break
			}
			sts = append(sts, st)
		}
		if len(sts) > 0 && sts[0].Leader != 0 {
			agree := true
			for _, st := range sts {
				agree = agree && st.Leader == sts[0].Leader
			}
			for _, st := range sts {
				if agree && st.ID == st.Leader {
					return st.Member, nil
				}
			}
		}
		if time.Now().After(deadline) {
			tails := ""
			for _, m := range e.Members {
				tails += "\n--- " + m.Name + "\n" + m.Proc.LogTail(10)
			}
			return nil, fmt.Errorf("etcd: no agreed leader after %v (last error: %v)%s", timeout, last, tails)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Restart starts a killed member again on its data directory.
func (e *Etcd) Restart(ctx context.Context, m *EtcdMember) error {
	m.Proc.Kill()
	p, err := e.reaper.Start(m.Proc.Name, m.Proc.LogPath, e.Bin, m.args...)
	if err != nil {
		return err
	}
	m.Proc = p
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := e.Status(ctx, m); err == nil {
			return nil
		}
		if !m.Proc.Running() || time.Now().After(deadline) {
			return fmt.Errorf("etcd %s did not come back\n%s", m.Name, m.Proc.LogTail(30))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// CaughtUp reports whether m has applied what the leader had committed
// when asked, less slack.
func (e *Etcd) CaughtUp(ctx context.Context, m *EtcdMember, slack uint64) (bool, error) {
	leader, err := e.Leader(ctx, 5*time.Second)
	if err != nil {
		return false, err
	}
	ls, err := e.Status(ctx, leader)
	if err != nil {
		return false, err
	}
	ms, err := e.Status(ctx, m)
	if err != nil {
		return false, err
	}
	return ms.RaftAppliedIndex+slack >= ls.RaftAppliedIndex, nil
}
