// Command rss measures a skiff server's memory per stored object: it starts
// one server, creates -pods Pods with a realistic spec at high concurrency,
// and reads the server's VmRSS from /proc/PID/status before, right after,
// and once the Go runtime has had time to return freed memory.
//
//	go run ./bench/rss -pods 10000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff/bench/internal/cluster"
)

func main() {
	var (
		pods     = flag.Int("pods", 10000, "Pods to create")
		clients  = flag.Int("clients", 256, "concurrent writers")
		settle   = flag.Duration("settle", 10*time.Second, "idle time before the settled reading")
		skiffBin = flag.String("skiff", "bin/skiff", "skiff binary (make build)")
		keep     = flag.Bool("keep", false, "keep the data directory and log")
	)
	flag.Parse()
	if err := run(*pods, *clients, *settle, *skiffBin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1)
	}
}

// podJSON is a Pod as a Deployment's template would make it: labels, an
// owner-like annotation, one container with a port, env, resources and a
// readiness probe.
func podJSON(i int) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-%07d","labels":{"app":"web","tier":"frontend","pod-template-hash":"5d8f7c9b6d"},"annotations":{"skiff.dev/revision":"3"}},`+
		`"spec":{"restartPolicy":"Always","terminationGracePeriodSeconds":30,"nodeSelector":{"kubernetes.io/os":"linux"},`+
		`"containers":[{"name":"web","image":"registry.local/web:1.25.3","imagePullPolicy":"IfNotPresent",`+
		`"ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],`+
		`"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"PORT","value":"8080"}],`+
		`"resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"cpu":"500m","memory":"256Mi"}},`+
		`"readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":5}}]}}`, i))
}

type reading struct {
	what       string
	rss, hwm   int64
	anon, file int64 // RssAnon, RssFile (bolt's mmap of the Raft log shows here)
	heapInuse  float64
	goroutines float64
}

func run(pods, clients int, settle time.Duration, bin string, keep bool) error {
	r := cluster.NewReaper()
	r.Keep = keep
	defer r.Close()
	r.CloseOnSignal()
	ctx := context.Background()
	fmt.Printf("# rss: %d pods, %d writers; machine: %d CPUs, %s, %s\n", pods, clients, runtime.NumCPU(), kernel(), runtime.Version())

	sk, err := cluster.StartSkiff(ctx, r, bin, 1)
	if err != nil {
		return err
	}
	srv := sk.Servers[0]
	// HTTPS with admin.conf's credential (also needed for /metrics; the
	// admin is not rate-limited).
	hc := sk.HTTPClient(30*time.Second, max(512, clients))
	read := func(what string) (reading, error) {
		st, err := srv.Proc.Status("VmRSS", "VmHWM", "RssAnon", "RssFile")
		if err != nil {
			return reading{}, err
		}
		m, err := scrape(hc, srv.URL()+"/metrics", "go_memstats_heap_inuse_bytes", "go_goroutines")
		if err != nil {
			return reading{}, err
		}
		return reading{what: what, rss: st["VmRSS"], hwm: st["VmHWM"], anon: st["RssAnon"], file: st["RssFile"], heapInuse: m["go_memstats_heap_inuse_bytes"], goroutines: m["go_goroutines"]}, nil
	}
	time.Sleep(2 * time.Second) // let start-up garbage settle
	before, err := read("idle, empty")
	if err != nil {
		return err
	}

	var next, failed, stored atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	url := srv.URL() + "/api/v1/namespaces/default/pods"
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= pods {
					return
				}
				n, err := create(hc, url, podJSON(i))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				stored.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d creates failed; first: %v", f, firstErr.Load())
	}
	// The writers' keep-alive connections each hold a server goroutine and
	// buffers; close them so the readings count the objects, not them.
	hc.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	after, err := read(fmt.Sprintf("after %d creates", pods))
	if err != nil {
		return err
	}
	time.Sleep(settle)
	settled, err := read(fmt.Sprintf("%v later, idle", settle))
	if err != nil {
		return err
	}
	count, err := countPods(hc, url)
	if err != nil {
		return err
	}
	if count != pods {
		return fmt.Errorf("listed %d pods, want %d", count, pods)
	}

	fmt.Printf("# created %d pods in %v (%.0f/s), %d errors; stored objects average %d bytes of JSON\n",
		pods, took.Round(time.Millisecond), float64(pods)/took.Seconds(), failed.Load(), stored.Load()/int64(pods))
	fmt.Println()
	fmt.Println("| when | VmRSS MiB | RssAnon MiB | RssFile MiB | VmHWM MiB | Go heap in use MiB | goroutines |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|")
	for _, x := range []reading{before, after, settled} {
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f |\n", x.what, mib(x.rss), mib(x.anon), mib(x.file), mib(x.hwm), x.heapInuse/(1<<20), x.goroutines)
	}
	fmt.Println()
	fmt.Printf("per pod (settled - idle) / %d: RSS %.1f KiB, Go heap in use %.1f KiB\n", pods,
		float64(settled.rss-before.rss)/float64(pods)/1024, (settled.heapInuse-before.heapInuse)/float64(pods)/1024)
	fmt.Printf("total RSS with %d pods: %.1f MiB (peak %.1f MiB)\n", pods, mib(settled.rss), mib(settled.hwm))
	return nil
}

func create(hc *http.Client, url string, body []byte) (int, error) {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("POST: %s", resp.Status)
	}
	return int(n), nil
}

// countPods lists the Pods and counts the items (a check that all were
// stored, and a reminder that a list is part of the footprint).
func countPods(hc *http.Client, url string) (int, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET pods: %s", resp.Status)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

// scrape reads the named unlabelled metrics from a Prometheus text page.
func scrape(hc *http.Client, url string, names ...string) (map[string]float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && want[name] {
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "linux"
	}
	return "linux " + strings.TrimSpace(string(b))
}
