package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

func newLogsCmd(o *options) *cobra.Command {
	var (
		opts  client.LogOptions
		tail  int64
		since time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-f] [--tail N] [--previous] [--timestamps]",
		Short: "Print the logs of a container in a pod",
		Long: `Print what a container of a pod wrote to stdout and stderr, from the node it
runs on (through the API server, so it works from anywhere the API is
reachable). Nodes keep each container's output in rotated files (10 MiB x 5 by
default): the oldest lines of a chatty container are gone.

A pod with one container needs no -c. --previous shows the instance before the
current one: what a container printed before it crashed and was restarted.
-f follows the log until the container stops or you interrupt it.`,
		Example: `  # The log of the only container of pod web-5d9c7b-x2x4q
  skiff logs web-5d9c7b-x2x4q

  # The last 20 lines, then follow
  skiff logs web-5d9c7b-x2x4q --tail 20 -f

  # Why did it restart? The previous instance's last words
  skiff logs web-5d9c7b-x2x4q -c web --previous

  # One pod of a Deployment
  skiff logs deploy/web

  # The last 5 minutes, with timestamps
  skiff logs pod/web-5d9c7b-x2x4q --since 5m --timestamps`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod, err := podArg(args[0])
			if err != nil {
				return err
			}
			if tail >= 0 {
				opts.TailLines = &tail
			} else if tail != -1 {
				return fmt.Errorf("--tail %d: want a number of lines, or -1 for all", tail)
			}
			if since < 0 {
				return fmt.Errorf("--since %v: must not be negative", since)
			}
			if since > 0 {
				opts.SinceSeconds = max(int64(since/time.Second), 1)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			// No request timeout: a log takes as long as it takes, and -f
			// lasts until the container stops or ^C.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if pod, err = resolvePod(ctx, c, o.namespace, pod); err != nil {
				return err
			}
			return c.Logs(ctx, o.namespace, pod, opts, o.out)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Container, "container", "c", "", "the container to show (needed when the pod has several)")
	f.BoolVarP(&opts.Follow, "follow", "f", false, "stream new lines until the container stops")
	f.Int64Var(&tail, "tail", -1, "show only the last N lines (-1: all)")
	f.BoolVarP(&opts.Previous, "previous", "p", false, "show the previous instance of the container (before its last restart)")
	f.BoolVar(&opts.Timestamps, "timestamps", false, "prefix each line with its RFC 3339 timestamp")
	f.DurationVar(&since, "since", 0, "show only lines newer than this, e.g. 5m or 1h")
	return cmd
}

// podArg accepts POD, pod/POD or pods/POD, as kubectl does; deploy/NAME
// and ds/NAME name a workload, resolved to one of its pods by
// resolvePod.
func podArg(arg string) (string, error) {
	kind, name, found := strings.Cut(arg, "/")
	if !found {
		return arg, nil
	}
	if _, ok := workloadKinds[kind]; ok && name != "" {
		return arg, nil
	}
	if kind != "pod" && kind != "pods" && kind != "po" {
		return "", fmt.Errorf("%q: only pods have logs and exec (want POD, pod/POD, deploy/NAME or ds/NAME)", arg)
	}
	if name == "" {
		return "", fmt.Errorf("%q: no pod name", arg)
	}
	return name, nil
}

// workloadKinds are the owners podArg accepts, by the names kubectl does.
var workloadKinds = map[string]api.Kind{
	"deploy": api.KindDeployment, "deployment": api.KindDeployment, "deployments": api.KindDeployment,
	"ds": api.KindDaemonSet, "daemonset": api.KindDaemonSet, "daemonsets": api.KindDaemonSet,
}

// resolvePod turns what podArg returned into a pod name: a workload
// (deploy/NAME) becomes one of its pods, a Ready one if there is one (the
// first by name, as kubectl picks one).
func resolvePod(ctx context.Context, c *client.Client, namespace, arg string) (string, error) {
	kindName, name, found := strings.Cut(arg, "/")
	if !found {
		return arg, nil
	}
	kind := workloadKinds[kindName]
	l, err := c.List(ctx, api.KindPod, client.ListOptions{Namespace: namespace})
	if err != nil {
		return "", err
	}
	var pick *api.Pod
	for _, o := range l.Items {
		p := o.(*api.Pod)
		owned := false
		for _, ref := range p.OwnerReferences {
			owned = owned || (ref.Kind == string(kind) && ref.Name == name && ref.Controller != nil && *ref.Controller)
		}
		if !owned || p.DeletionTimestamp != nil {
			continue
		}
		if pick == nil || (podIsReady(p) && !podIsReady(pick)) || (podIsReady(p) == podIsReady(pick) && p.Name < pick.Name) {
			pick = p
		}
	}
	if pick == nil {
		return "", fmt.Errorf("%s %q has no pods in namespace %q", strings.ToLower(string(kind)), name, namespace)
	}
	return pick.Name, nil
}
