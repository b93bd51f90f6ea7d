package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// updateRetrying reads an object, changes it and writes it back, reading
// again when someone else (a controller) wrote in between.
func updateRetrying(ctx context.Context, c *client.Client, kind api.Kind, ns, name string, change func(api.Object) error) (api.Object, error) {
	for try := 0; ; try++ {
		o, err := c.Get(ctx, kind, ns, name)
		if err != nil {
			return nil, err
		}
		if err := change(o); err != nil {
			return nil, err
		}
		out, err := c.Update(ctx, o)
		if err == nil || !client.IsConflict(err) || try == 10 {
			return out, err
		}
	}
}

func newScaleCmd(o *options) *cobra.Command {
	var replicas int32
	cmd := &cobra.Command{
		Use:   "scale deployment/NAME --replicas N",
		Short: "Set the number of replicas of a Deployment",
		Example: `  skiff scale deployment/web --replicas 5
  skiff scale deploy web --replicas 0 -n team-a`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("replicas") {
				return errors.New("--replicas is required")
			}
			if replicas < 0 {
				return fmt.Errorf("--replicas %d: must be 0 or more", replicas)
			}
			name, err := deploymentArg(args)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			_, err = updateRetrying(ctx, c, api.KindDeployment, o.namespace, name, func(obj api.Object) error {
				obj.(*api.Deployment).Spec.Replicas = &replicas
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(o.out, "deployment.apps/%s scaled\n", name)
			return nil
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", 0, "the new number of replicas")
	return cmd
}

// deploymentArg accepts "deployment/NAME", "deploy NAME" or "NAME".
func deploymentArg(args []string) (string, error) {
	switch len(args) {
	case 1:
		if kind, name, ok := strings.Cut(args[0], "/"); ok {
			if info, found := api.ByResource(kind); !found || info.Kind != api.KindDeployment {
				return "", fmt.Errorf("%q: only deployments are supported here", args[0])
			}
			return name, nil
		}
		return args[0], nil
	case 2:
		if info, found := api.ByResource(args[0]); !found || info.Kind != api.KindDeployment {
			return "", fmt.Errorf("%q: only deployments are supported here", args[0])
		}
		return args[1], nil
	}
	return "", errors.New("name a deployment: deployment/NAME")
}

func newCordonCmd(o *options, cordon bool) *cobra.Command {
	use, short, verb := "cordon NODE...", "Mark nodes unschedulable: no new pods land on them", "cordoned"
	if !cordon {
		use, short, verb = "uncordon NODE...", "Mark nodes schedulable again", "uncordoned"
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  skiff " + strings.Fields(use)[0] + " node-1",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			for _, name := range args {
				if err := setUnschedulable(ctx, c, name, cordon); err != nil {
					return err
				}
				fmt.Fprintf(o.out, "node/%s %s\n", name, verb)
			}
			return nil
		},
	}
}

func setUnschedulable(ctx context.Context, c *client.Client, node string, v bool) error {
	_, err := updateRetrying(ctx, c, api.KindNode, "", node, func(obj api.Object) error {
		obj.(*api.Node).Spec.Unschedulable = v
		return nil
	})
	return err
}

func newDrainCmd(o *options) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Cordon a node and move its pods away, one at a time",
		Long: `Cordon the node, then evict its pods one at a time: a pod owned by a
Deployment is deleted only while its Deployment has more available replicas
than it needs (replicas minus maxUnavailable), so a drain never takes a
workload below what its rollout strategy allows. Pods of DaemonSets stay.`,
		Example: `  skiff drain node-1
  skiff drain node-1 --timeout 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := setUnschedulable(ctx, c, node, true); err != nil {
				return err
			}
			fmt.Fprintf(o.out, "node/%s cordoned\n", node)
			pods, err := c.List(ctx, api.KindPod, client.ListOptions{FieldSelector: "spec.nodeName=" + node})
			if err != nil {
				return err
			}
			for _, po := range pods.Items {
				p := po.(*api.Pod)
				if ownedBy(p, api.KindDaemonSet) != "" {
					continue
				}
				if err := waitEvictable(ctx, c, p); err != nil {
					return fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
				}
				if _, err := c.Delete(ctx, api.KindPod, p.Namespace, p.Name, client.DeleteOptions{UID: p.UID}); err != nil && !client.IsNotFound(err) {
					return err
				}
				fmt.Fprintf(o.out, "pod/%s evicted\n", p.Name)
			}
			fmt.Fprintf(o.out, "node/%s drained\n", node)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

func ownedBy(p *api.Pod, kind api.Kind) string {
	for _, r := range p.OwnerReferences {
		if api.Kind(r.Kind) == kind {
			return r.Name
		}
	}
	return ""
}

// waitEvictable waits until deleting p keeps its Deployment within
// maxUnavailable.
func waitEvictable(ctx context.Context, c *client.Client, p *api.Pod) error {
	name := ownedBy(p, api.KindDeployment)
	if name == "" {
		return nil
	}
	for {
		o, err := c.Get(ctx, api.KindDeployment, p.Namespace, name)
		if client.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		d := o.(*api.Deployment)
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		var unavail int32
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			_, unavail, _ = api.ResolveFenceposts(ru.MaxSurge, ru.MaxUnavailable, want)
		}
		if !podIsReady(p) || d.Status.AvailableReplicas-1 >= want-unavail {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s stays at %d available of %d (maxUnavailable %d): %w", name, d.Status.AvailableReplicas, want, unavail, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func podIsReady(p *api.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == api.PodReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}

func newRolloutCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Follow, list and undo the rollouts of a Deployment"}
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status deployment/NAME",
		Short: "Wait for a Deployment's rollout to finish, showing progress",
		Long: `Block until every replica runs the current template and is available,
printing progress as it changes. Exits non-zero when --timeout passes first.`,
		Example: `  skiff rollout status deployment/web
  skiff rollout status deploy web --timeout 2m`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentArg(args)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			last := ""
			for {
				obj, err := c.Get(ctx, api.KindDeployment, o.namespace, name)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("deployment %q: rollout not finished after %v", name, timeout)
					}
					return err
				}
				d := obj.(*api.Deployment)
				msg, done := rolloutProgress(d)
				if msg != last {
					fmt.Fprintln(o.out, msg)
					last = msg
				}
				if done {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("deployment %q: rollout not finished after %v", name, timeout)
				case <-time.After(300 * time.Millisecond):
				}
			}
		},
	}
	status.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up (exit 1) after this long")
	cmd.AddCommand(status, newRolloutHistoryCmd(o), newRolloutUndoCmd(o))
	return cmd
}

// rolloutProgress says where a rollout is, in kubectl's words.
func rolloutProgress(d *api.Deployment) (string, bool) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		return "Waiting for deployment spec update to be observed...", false
	case s.UpdatedReplicas < want:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, s.UpdatedReplicas, want), false
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, s.Replicas-s.UpdatedReplicas), false
	case s.AvailableReplicas < s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, s.AvailableReplicas, s.UpdatedReplicas), false
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true
}
