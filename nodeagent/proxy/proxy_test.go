package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/bpf"
	"github.com/skiffhq/skiff/nodeagent/network/netnstest"
	"github.com/skiffhq/skiff/nodeagent/proxy"
	"github.com/skiffhq/skiff/nodeagent/proxy/proxytest"
)

func TestMain(m *testing.M) { proxytest.Main(m) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestUserspaceSuite(t *testing.T) {
	env := proxytest.NewEnv(t, proxytest.Options{})
	proxytest.Run(t, env, func(t *testing.T, reg prometheus.Registerer) proxy.Proxier {
		p, err := proxy.New(proxy.Config{Mode: proxy.ModeUserspace, NetNS: env.NS.Path, Registerer: reg, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if p.Mode() != proxy.ModeUserspace {
			t.Fatalf("mode %s", p.Mode())
		}
		return p
	}, proxytest.Features{StaleFlows: true})
}

// requireBPF skips (or fails under SKIFF_REQUIRE_INTEGRATION=1) without a
// kernel that runs the datapath.
func requireBPF(t *testing.T) bpf.Features {
	t.Helper()
	feat, err := bpf.Probe()
	if err != nil {
		netnstest.Missing(t, fmt.Sprintf("the eBPF datapath (probe: %v)", err))
	}
	return feat
}

func ebpfConfig(t *testing.T, env *proxytest.Env) proxy.Config {
	return proxy.Config{
		Mode:       proxy.ModeEBPF,
		PinDir:     proxytest.BPFFS(t) + "/skiff",
		CgroupPath: env.Cgroup,
		NetnsPaths: func() ([]string, error) { return []string{env.NS.Path}, nil },
		Logger:     testLogger(t),
	}
}

func TestEBPFSuite(t *testing.T) {
	netnstest.Require(t)
	feat := requireBPF(t)
	env := proxytest.NewEnv(t, proxytest.Options{Cgroup: true})
	proxytest.Run(t, env, func(t *testing.T, reg prometheus.Registerer) proxy.Proxier {
		cfg := ebpfConfig(t, env)
		cfg.Registerer = reg
		p, err := proxy.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Close keeps the programs attached (forwarding goes on without
		// the agent); the next test starts from nothing.
		t.Cleanup(func() {
			if err := proxy.Cleanup(cfg); err != nil {
				t.Error(err)
			}
		})
		if p.Mode() != proxy.ModeEBPF {
			t.Fatalf("mode %s", p.Mode())
		}
		return p
	}, proxytest.Features{StaleFlows: feat.SockDestroy})
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAutoMode: auto picks ebpf when the probe passes, and falls back to
// userspace, saying so in the log and the metric, when the probe reports
// a missing feature or cannot tell.
func TestAutoMode(t *testing.T) {
	netnstest.Require(t)
	env := proxytest.NewEnv(t, proxytest.Options{Cgroup: true})
	tests := []struct {
		name       string
		probe      func() (proxy.ProbeResult, error)
		want       proxy.Mode
		wantReason string
	}{{
		name: "missing feature",
		probe: func() (proxy.ProbeResult, error) {
			return proxy.ProbeResult{}, fmt.Errorf("bpf: probe cgroup sock_addr programs: %w", ebpf.ErrNotSupported)
		},
		want:       proxy.ModeUserspace,
		wantReason: "kernel lacks an eBPF feature",
	}, {
		name: "probe error",
		probe: func() (proxy.ProbeResult, error) {
			return proxy.ProbeResult{}, errors.New("bpf: probe: operation not permitted")
		},
		want:       proxy.ModeUserspace,
		wantReason: "eBPF support unknown",
	}, {
		name:       "probe passes",
		probe:      func() (proxy.ProbeResult, error) { return proxy.ProbeResult{SockDestroy: true}, nil },
		want:       proxy.ModeEBPF,
		wantReason: "eBPF feature probe passed",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == proxy.ModeEBPF {
				requireBPF(t)
			}
			var logs logBuffer
			reg := prometheus.NewRegistry()
			cfg := ebpfConfig(t, env)
			cfg.Mode = proxy.ModeAuto
			cfg.NetNS = env.NS.Path
			cfg.Probe = tc.probe
			cfg.Registerer = reg
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			p, err := proxy.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := p.Close(); err != nil {
					t.Error(err)
				}
				if err := proxy.Cleanup(cfg); err != nil {
					t.Error(err)
				}
			})
			if p.Mode() != tc.want {
				t.Fatalf("auto chose %s, want %s; log:\n%s", p.Mode(), tc.want, logs.String())
			}
			out := logs.String()
			if !strings.Contains(out, `msg="service proxy mode" mode=`+string(tc.want)+" requested=auto") || !strings.Contains(out, tc.wantReason) {
				t.Errorf("log does not say the mode (%s) and why (%q):\n%s", tc.want, tc.wantReason, out)
			}
			if tc.want == proxy.ModeUserspace && !strings.Contains(out, "level=WARN") {
				t.Errorf("the fallback is not logged as a warning:\n%s", out)
			}
			if got := modeInfo(t, reg); len(got) != 1 || got[string(tc.want)] != 1 {
				t.Errorf("skiff_proxy_mode_info = %v, want {%s: 1}", got, tc.want)
			}
		})
	}
}

// modeInfo returns skiff_proxy_mode_info by mode.
func modeInfo(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "skiff_proxy_mode_info" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "mode" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// TestEBPFKill9KeepsForwarding: the eBPF datapath forwards without its
// agent. A proxier process is killed with SIGKILL during a long-lived
// TCP connection and a stream of new connections; a new proxier (the
// restarted agent) opens the same pins and syncs the same services.
// Not one connection fails, and the long-lived one keeps its backend.
func TestEBPFKill9KeepsForwarding(t *testing.T) {
	netnstest.Require(t)
	requireBPF(t)
	env := proxytest.NewEnv(t, proxytest.Options{Cgroup: true})
	for _, a := range proxytest.BackendAddrs {
		env.StartBackend(t, a, 8080, 5353)
	}
	client := env.StartClient(t)
	cfg := ebpfConfig(t, env)
	t.Cleanup(func() {
		if err := proxy.Cleanup(cfg); err != nil {
			t.Error(err)
		}
	})
	port := proxytest.Port("http", "TCP", 80, 8080)
	svcs := []*api.Service{proxytest.Service("web", proxytest.WebVIP, port)}
	eps := []*api.Endpoints{proxytest.Endpoints("web", proxytest.BackendAddrs, nil, port)}
	vip := netip.AddrPortFrom(proxytest.WebVIP, 80)

	first := proxytest.StartProxierProcess(t, cfg, svcs, eps)
	long := client.OpenTCP(t, vip)
	before := client.AskTCP(t, long)
	if before.Err != "" {
		t.Fatalf("long-lived connection: %s", before.Err)
	}
	stream := client.StartStream(t, vip)
	time.Sleep(100 * time.Millisecond)
	if err := first.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	time.Sleep(300 * time.Millisecond) // no agent at all
	if r := client.AskTCP(t, long); r.Err != "" || r.Backend != before.Backend {
		t.Errorf("long-lived connection with no agent: backend %q err %q, want %s", r.Backend, r.Err, before.Backend)
	}

	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Sync(context.Background(), svcs, eps); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	n, failed := client.StopStream(t, stream)
	if len(failed) > 0 || n < 10 {
		t.Errorf("%d of %d new connections failed across the kill and restart (first: %+v)", len(failed), n, failed)
	}
	t.Logf("%d new connections across kill -9 and restart, %d failed", n, len(failed))
	if r := client.AskTCP(t, long); r.Err != "" || r.Backend != before.Backend {
		t.Errorf("long-lived connection after the restart: backend %q err %q, want %s", r.Backend, r.Err, before.Backend)
	}
}

// With BPFStats the programs' run counts and run time are exported.
func TestEBPFProgramStats(t *testing.T) {
	netnstest.Require(t)
	requireBPF(t)
	env := proxytest.NewEnv(t, proxytest.Options{Cgroup: true})
	for _, a := range proxytest.BackendAddrs {
		env.StartBackend(t, a, 8080, 5353)
	}
	client := env.StartClient(t)
	cfg := ebpfConfig(t, env)
	cfg.BPFStats = true
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if err := proxy.Cleanup(cfg); err != nil {
			t.Error(err)
		}
	})
	port := proxytest.Port("http", "TCP", 80, 8080)
	if err := p.Sync(context.Background(), []*api.Service{proxytest.Service("web", proxytest.WebVIP, port)},
		[]*api.Endpoints{proxytest.Endpoints("web", proxytest.BackendAddrs, nil, port)}); err != nil {
		t.Fatal(err)
	}
	for i, r := range client.TCP(t, netip.AddrPortFrom(proxytest.WebVIP, 80), 10) {
		if r.Err != "" {
			t.Fatalf("connection %d: %s", i, r.Err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "program" && l.GetValue() == "connect4" {
					values[mf.GetName()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got := values["skiff_proxy_bpf_program_runs_total"]; got < 10 {
		t.Errorf("connect4 runs = %v, want >= 10 (10 connections made)", got)
	}
	if got := values["skiff_proxy_bpf_program_run_seconds_total"]; got <= 0 {
		t.Errorf("connect4 run time = %v s, want > 0", got)
	}
	t.Logf("connect4: %v runs, %v s", values["skiff_proxy_bpf_program_runs_total"], values["skiff_proxy_bpf_program_run_seconds_total"])
}
