package containerd

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// BenchmarkWarmStart measures a pod's start on a warm image through the
// runtime — RunSandbox + CreateContainer + StartContainer (returning once
// the process runs), with a log file and limits, as the agent does it —
// beside containerd alone (a container with the image's config, no
// sandbox, no logs, no limits) in the same run. Each reports its median
// and slowest start:
//
//	go test -run '^$' -bench WarmStart -benchtime 20x ./nodeagent/runtime/containerd/
func BenchmarkWarmStart(b *testing.B) {
	e := sharedEnv(b)
	b.Run("containerd-alone", func(b *testing.B) { benchPlain(b, e.newRuntime(b)) })
	b.Run("runtime", func(b *testing.B) { benchRuntime(b, e.newRuntime(b)) })
	b.Run("runtime-seccomp-unconfined", func(b *testing.B) {
		rt := e.newRuntime(b)
		rt.cfg.SeccompUnconfined = true
		benchRuntime(b, rt)
	})
}

func reportStarts(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}

func benchRuntime(b *testing.B, rt *Runtime) {
	ctx := context.Background()
	img, err := rt.EnsureImage(ctx, testImage, api.PullNever)
	if err != nil {
		b.Fatal(err)
	}
	logDir := b.TempDir()
	var took []time.Duration
	var sandboxes []runtime.SandboxID
	b.Cleanup(func() {
		for _, sb := range sandboxes {
			rt.RemoveSandbox(ctx, sb)
		}
	})
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		sb, err := rt.RunSandbox(ctx, runtime.SandboxConfig{Pod: runtime.PodMeta{Name: fmt.Sprint("bench-", i), Namespace: "bench",
			UID: api.UID(fmt.Sprint("bench-uid-", i))}, Hostname: fmt.Sprint("bench-", i)})
		if err != nil {
			b.Fatal(err)
		}
		id, err := rt.CreateContainer(ctx, sb, runtime.ContainerConfig{Meta: runtime.ContainerMeta{Name: "main"}, Image: img,
			Command: []string{"sleep", "3600"}, LogPath: fmt.Sprintf("%s/%d.log", logDir, i),
			Resources: runtime.Resources{CPUShares: 102, MemoryLimit: 64 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(began))
		sandboxes = append(sandboxes, sb)
	}
	b.StopTimer()
	reportStarts(b, took)
}

func benchPlain(b *testing.B, rt *Runtime) {
	ctx := rt.ns(context.Background())
	img, err := rt.client.GetImage(ctx, testImage)
	if err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		id := fmt.Sprint("plain-", i)
		c, err := rt.client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithSnapshotter(rt.cfg.Snapshotter),
			containerd.WithNewSnapshot(id, img), containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3600"),
				oci.WithCgroup(rt.cfg.CgroupParent+"/"+id)))
		if err != nil {
			b.Fatal(err)
		}
		task, err := c.NewTask(ctx, cio.NullIO)
		if err != nil {
			b.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(began))
	}
	b.StopTimer()
	reportStarts(b, took) // the namespace's purge removes the containers
}
