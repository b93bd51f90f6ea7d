package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 50; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := dist{n: 50, p50: 25 * time.Millisecond, p90: 45 * time.Millisecond, p99: 50 * time.Millisecond, max: 50 * time.Millisecond}
	if got != want {
		t.Errorf("summarize(1..50 ms) = %+v, want %+v", got, want)
	}
	if ds[0] != 50*time.Millisecond {
		t.Errorf("summarize sorted its argument in place")
	}
	if got := summarize(nil); got != (dist{}) {
		t.Errorf("summarize(nil) = %+v, want zero", got)
	}
}

func TestStalePID(t *testing.T) {
	// A PID that surely ran and has exited: a child we waited for.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	dead := cmd.Process.Pid
	self := os.Getpid()
	for _, tc := range []struct {
		name, prefix string
		pid          int
		stale        bool
	}{
		{netnsPrefix + strconv.Itoa(dead), netnsPrefix, dead, true},
		{dirPrefix + strconv.Itoa(dead), dirPrefix, dead, true},
		{netnsPrefix + strconv.Itoa(self), netnsPrefix, 0, false},               // running
		{"skiff-test-e2e-" + strconv.Itoa(dead), netnsPrefix, 0, false},         // another prefix
		{netnsPrefix + "0" + strconv.Itoa(dead), netnsPrefix, 0, false},         // not canonical
		{netnsPrefix + "podstart-" + strconv.Itoa(dead), netnsPrefix, 0, false}, // not a PID
		{netnsPrefix, netnsPrefix, 0, false},
	} {
		pid, stale := stalePID(tc.name, tc.prefix)
		if stale != tc.stale || (stale && pid != tc.pid) {
			t.Errorf("stalePID(%q, %q) = %d, %v; want %d, %v", tc.name, tc.prefix, pid, stale, tc.pid, tc.stale)
		}
	}
}

func TestParseStat(t *testing.T) {
	// A command name may hold spaces and parentheses.
	line := "1234 (a (b) c) S 42 1234 1234 0 -1 4194560 100 0 0 0 7 3 11 13 20 0 1 0 100 1000 200"
	comm, f, ok := parseStat(line)
	if !ok || comm != "a (b) c" || f[0] != "S" || f[1] != "42" || f[11] != "7" || f[12] != "3" || f[13] != "11" || f[14] != "13" {
		t.Errorf("parseStat = %q %v %v", comm, f, ok)
	}
	if _, _, ok := parseStat("1234 (x) S 1"); ok {
		t.Errorf("parseStat accepted a short line")
	}
}

func TestReadUsageSelf(t *testing.T) {
	u := readUsage(os.Getpid())
	if u.n != 1 || u.rss <= 0 {
		t.Errorf("readUsage(self) = %+v, want one process with an RSS", u)
	}
	if u := readUsage(-1); u.n != 0 {
		t.Errorf("readUsage(-1) = %+v, want nothing", u)
	}
}

func TestDeploymentJSON(t *testing.T) {
	for _, probe := range []time.Duration{0, time.Second, 10 * time.Second} {
		obj, err := api.DecodeObject([]byte(deploymentJSON("ps-x-1", 7, probe)))
		if err != nil {
			t.Fatalf("probe %v: %v", probe, err)
		}
		d, ok := obj.(*api.Deployment)
		if !ok {
			t.Fatalf("decoded a %T", obj)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 7 || d.Spec.Template.Labels["app"] != "ps-x-1" ||
			d.Spec.Template.Labels[benchLabel] != "podstart" {
			t.Errorf("deployment %+v", d.Spec)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != "localhost/skiff/echo:latest" || c.ImagePullPolicy != api.PullIfNotPresent {
			t.Errorf("container %+v", c)
		}
		switch {
		case probe == 0 && c.ReadinessProbe != nil:
			t.Errorf("probe 0: a readiness probe %+v", c.ReadinessProbe)
		case probe > 0 && (c.ReadinessProbe == nil || c.ReadinessProbe.PeriodSeconds != int32(probe.Seconds())):
			t.Errorf("probe %v: readiness probe %+v", probe, c.ReadinessProbe)
		}
	}
}

func TestInNamespaceRefusesTheHost(t *testing.T) {
	self, err := nsID("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no network namespace file: %v", err)
	}
	if err := inNamespace("skiff-bench-none", self); err == nil || !strings.Contains(err.Error(), "own network namespace") {
		t.Errorf("inNamespace with this namespace as the host's: %v", err)
	}
	if err := inNamespace("skiff-bench-none", ""); err == nil {
		t.Errorf("inNamespace without the host's namespace: no error")
	}
	if err := inNamespace("skiff-bench-none-"+strconv.Itoa(os.Getpid()), "0:0"); err == nil {
		t.Errorf("inNamespace with a namespace that does not exist: no error")
	}
}

func TestShimSocket(t *testing.T) {
	for _, tc := range []struct{ cmdline, want string }{
		// Checked against a live shim: the file containerd 1.6 creates.
		{"/usr/bin/containerd-shim-runc-v2 -namespace skiff-bench-1 -id abc -address /tmp/d/containerd.sock",
			"/run/containerd/s/4cc23eabc3c0654cc9747954462af1276db7b4e7c30b8380266e44dada199f7e"},
		{"/usr/bin/containerd-shim-runc-v2 -id abc -address /tmp/d/containerd.sock", ""},
		{"/usr/bin/containerd-shim-runc-v2 -namespace n -id", ""},
	} {
		if got := shimSocket(tc.cmdline); got != tc.want {
			t.Errorf("shimSocket(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}
