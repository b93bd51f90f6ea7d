package containerd

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// containerArgs is the process a container runs, by Kubernetes' rules:
// Command replaces the image's ENTRYPOINT and Args its CMD; with only Args
// the ENTRYPOINT stays and the CMD goes.
func containerArgs(img ocispec.ImageConfig, command, args []string) []string {
	switch {
	case len(command) > 0:
		return append(append([]string(nil), command...), args...)
	case len(args) > 0:
		return append(append([]string(nil), img.Entrypoint...), args...)
	default:
		return append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	}
}

// envList spells env as KEY=VALUE.
func envList(env []runtime.KeyValue) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		out = append(out, kv.Key+"="+kv.Value)
	}
	return out
}

// openFilesLimit is every container's RLIMIT_NOFILE: the agent's own hard
// limit (as containers inherit containerd's under CRI), at most 1Mi as
// Docker sets it. containerd's default of 1024 is too few for servers
// under load.
func openFilesLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Max < 1024 {
		return 1024
	}
	return min(lim.Max, 1<<20)
}

// specOpts builds a container's OCI spec on containerd's defaults (which
// already carry Docker's default capabilities, masked and read-only
// paths and devices).
func (r *Runtime) specOpts(img containerd.Image, imgCfg ocispec.ImageConfig, sb sandboxMeta, cfg runtime.ContainerConfig, cgroup string) ([]oci.SpecOpts, error) {
	argv := containerArgs(imgCfg, cfg.Command, cfg.Args)
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command: the image has no entrypoint or cmd and the container sets none")
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img), // env, user, groups, working directory
		oci.WithProcessArgs(argv...),
		oci.WithEnv(envList(cfg.Env)),
		oci.WithHostname(sb.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNS}),
		oci.WithCgroup(cgroup),
		oci.WithNoNewPrivileges,
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: r.openFiles, Soft: r.openFiles}),
	}
	if !r.cfg.SeccompUnconfined {
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	if cfg.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(cfg.WorkingDir))
	}
	res := cfg.Resources
	if res.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(res.CPUShares))
	}
	if res.CPUQuota > 0 {
		period := res.CPUPeriod
		if period == 0 {
			period = 100000
		}
		opts = append(opts, oci.WithCPUCFS(res.CPUQuota, period))
	}
	if res.MemoryLimit > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(res.MemoryLimit)))
		if r.swapAccounting() {
			// No swap beyond the limit, as the kubelet: memory+swap = memory.
			opts = append(opts, oci.WithMemorySwap(res.MemoryLimit))
		}
	}
	return opts, nil
}

// imageConfig reads an image's configuration (entrypoint, cmd, env).
func imageConfig(ctx context.Context, img containerd.Image) (ocispec.ImageConfig, error) {
	spec, err := img.Spec(ctx)
	if err != nil {
		return ocispec.ImageConfig{}, err
	}
	return spec.Config, nil
}
