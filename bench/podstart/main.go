package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/skiffhq/skiff/bench/internal/cluster"
)

type options struct {
	starts     int
	services   int
	fleet      int
	fleetProbe time.Duration
	settle     time.Duration
	idle       time.Duration
	breakdown  bool
	timeout    time.Duration
	bin        string
	image      string
	keep       bool
	logLevel   string
}

func main() {
	var o options
	flag.IntVar(&o.starts, "starts", 50, "pod starts per variant (sequential)")
	flag.IntVar(&o.services, "services", 100, "Services created over 3 Ready pods, each timed to its first answer through the ClusterIP (0 skips the phase)")
	flag.IntVar(&o.fleet, "fleet", 100, "pods of the one-node phase (one Deployment; 0 skips it)")
	flag.DurationVar(&o.fleetProbe, "fleet-probe-period", 10*time.Second, "readiness probe period of the one-node phase's pods (Kubernetes' default; 0: no probe)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the last pod is Ready before the idle window")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle window over which RSS and CPU are read")
	flag.BoolVar(&o.breakdown, "breakdown", true, "also time containerd alone with the agent's container options: its default seccomp profile, then also its log driver")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up on a pod start or teardown after this")
	flag.StringVar(&o.bin, "skiff", "bin/skiff", "skiff binary (make build)")
	flag.StringVar(&o.image, "image", "bin/images/echo.tar", "the echo image tarball, localhost/skiff/echo:latest (make images)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and the processes' logs")
	flag.StringVar(&o.logLevel, "log-level", "info", "--log-level of skiff dev and skiff agent")
	flag.Parse()
	if o.starts < 1 || o.fleet < 0 || o.idle < time.Second {
		fmt.Fprintln(os.Stderr, "podstart: -starts must be at least 1, -fleet not negative, -idle at least 1s")
		os.Exit(2)
	}
	for _, p := range []*string{&o.bin, &o.image} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if cg := os.Getenv(clientEnv); cg != "" {
		os.Exit(runClient(cg))
	}
	if netns := os.Getenv(innerEnv); netns != "" {
		os.Exit(runInner(o, sandbox{netns: netns, dir: os.Getenv(dirEnv)}))
	}
	os.Exit(runOuter(o))
}

// runInner is the half inside the namespace: it runs the cluster and the
// measurements and stops its processes when it returns.
func runInner(o options, sb sandbox) int {
	if err := inNamespace(sb.netns, os.Getenv(hostNSEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		return 1
	}
	if sb.dir == "" {
		fmt.Fprintln(os.Stderr, "podstart: no data directory given ($"+dirEnv+")")
		return 1
	}
	r := cluster.NewReaper()
	defer r.Close()
	r.CloseOnSignal()
	if err := run(context.Background(), r, o, sb); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, r *cluster.Reaper, o options, sb sandbox) error {
	fmt.Printf("# podstart: %d starts per variant, sequential and interleaved, warm image; then %d pods on one node\n", o.starts, o.fleet)
	fmt.Printf("# machine: %d CPUs, %s, load %s (shared: other engineers' builds and tests run alongside)\n",
		runtime.NumCPU(), kernel(), loadavg())
	fmt.Printf("# %s; this checkout %s\n", versions(o.bin), gitDescribe())
	n, err := startNode(ctx, r, o, sb)
	if err != nil {
		return err
	}
	tr, err := trackPods(ctx, n.client)
	if err != nil {
		return err
	}
	defer tr.stop()
	base, err := newBaseline(ctx, sb.containerdSocket(), sb.baselineNamespace(), o.image, sb.cgroupParent()+"/baseline",
		o.bin, filepath.Join(sb.dir, "baseline-logs"))
	if err != nil {
		return err
	}
	defer func() {
		if err := base.close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "podstart: baseline cleanup:", err)
		}
	}()
	fmt.Printf("# node %s Ready; runtime %s, containerd namespace %s (baseline: %s), pods' cgroups under %s\n",
		n.name, base.containerdVersion(ctx), sb.containerdNamespace(), sb.baselineNamespace(), sb.cgroupParent())

	if err := printBackground(ctx, "before the starts"); err != nil {
		return err
	}
	res, err := measureStarts(ctx, o, n, tr, base)
	if err != nil {
		return err
	}
	res.print(o)
	fmt.Printf("# load after the starts: %s\n", loadavg())
	if o.services > 0 {
		sr, err := measureServices(ctx, o, n, tr, sb)
		if err != nil {
			return err
		}
		sr.print(o)
		fmt.Printf("# load after the services: %s\n", loadavg())
	}
	if o.fleet == 0 {
		return nil
	}
	if err := printBackground(ctx, "before the 100 pods"); err != nil {
		return err
	}
	f, err := measureFleet(ctx, o, n, tr, base)
	if err != nil {
		return err
	}
	f.print(o)
	fmt.Printf("# load at the end: %s\n", loadavg())
	return nil
}

// printBackground prints how busy the machine is while the node idles:
// the other engineers' share of the CPUs at that moment. (The busy share
// printed for each start includes that start's own processes.)
func printBackground(ctx context.Context, when string) error {
	a := takeSnapshot(nil)
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	fmt.Printf("# machine busy with the node idle, 3 s %s: %.0f%% of %d CPUs (load %s)\n", when, busyPercent(a, takeSnapshot(nil)), runtime.NumCPU(), loadavg())
	return nil
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "linux ?"
	}
	return "linux " + strings.TrimSpace(string(b))
}

// gitDescribe names the commit the skiff tree is at, and whether it has
// uncommitted changes (bin/skiff is built from the working tree).
func gitDescribe() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(not a git checkout)"
	}
	s := "at " + strings.TrimSpace(string(head))
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
		s += fmt.Sprintf(" + uncommitted changes in %d files", strings.Count(string(out), "\n"))
	}
	return s
}
