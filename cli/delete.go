package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

func newDeleteCmd(o *options) *cobra.Command {
	var files []string
	var recursive, ignoreNotFound, force, wait bool
	var grace int64
	cmd := &cobra.Command{
		Use:   "delete (-f FILENAME | KIND NAME... | KIND/NAME...)",
		Short: "Delete objects by name or by manifest",
		Long: `Delete objects named on the command line, or every object of the given
manifests. A missing object is an error unless --ignore-not-found is given.

A pod running on a node is deleted gracefully: its containers get SIGTERM,
then SIGKILL once its grace period (spec.terminationGracePeriodSeconds,
or --grace-period) has passed, and the pod goes once its node has stopped
it. delete waits for that (--wait=false returns at once). --force with
--grace-period=0 removes the object at once without waiting for the node:
its containers may go on running until the node notices.`,
		Example: `  # Delete what a manifest created
  skiff delete -f examples/web.yaml

  # Delete a Deployment and a Service by name
  skiff delete deploy web
  skiff delete svc/web

  # No error when it is already gone
  skiff delete deploy web --ignore-not-found

  # Give a pod 5 seconds to stop instead of its own grace period
  skiff delete pod web-7d9c-x2x8p --grace-period 5

  # Remove a pod's object now, whatever its node does (a lost node)
  skiff delete pod web-7d9c-x2x8p --force --grace-period 0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			type item struct {
				info api.ResourceInfo
				ns   string
				name string
			}
			var items []item
			switch {
			case len(files) > 0 && len(args) > 0:
				return fmt.Errorf("pass either -f or KIND NAME, not both")
			case len(files) > 0:
				objs, err := readManifests(files, recursive, o.in, o.namespace, cmd.Flags().Changed("namespace"))
				if err != nil {
					return err
				}
				for _, m := range objs {
					meta := m.Object.GetObjectMeta()
					items = append(items, item{m.Info, meta.Namespace, meta.Name})
				}
			case len(args) == 0:
				return fmt.Errorf("you must provide one or more resources by argument or filename (-f)")
			default:
				targets, err := parseTargets(args)
				if err != nil {
					return err
				}
				if !anyNamed(targets) {
					return fmt.Errorf("resource(s) were provided, but no name was specified")
				}
				for _, t := range targets {
					for _, n := range t.names {
						items = append(items, item{t.info, o.namespaceFor(t.info), n})
					}
				}
			}
			var opts client.DeleteOptions
			switch {
			case force && grace != 0:
				return fmt.Errorf("--force needs --grace-period 0: it removes objects at once")
			case grace == 0 && !force:
				return fmt.Errorf("--grace-period 0 removes a pod before its node has stopped it: add --force if that is what you want, or use --grace-period 1 for a fast graceful delete")
			case grace >= 0:
				opts.GracePeriodSeconds = &grace
			case grace < -1:
				return fmt.Errorf("--grace-period %d: want seconds (0 or more), or -1 for each pod's own", grace)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			failed := false
			var pending []item
			var uids []api.UID
			for _, it := range items {
				ctx, cancel := o.requestContext(cmd.Context())
				last, err := c.Delete(ctx, it.info.Kind, it.ns, it.name, opts)
				cancel()
				switch {
				case err == nil:
					fmt.Fprintf(o.out, "%s %q deleted\n", kindName(it.info), it.name)
					if m := last.GetObjectMeta(); wait && m.DeletionTimestamp != nil {
						pending = append(pending, it)
						uids = append(uids, m.UID)
					}
				case isNotFound(err) && ignoreNotFound:
				default:
					failed = true
					o.reportError(err)
				}
			}
			for i, it := range pending {
				if err := waitGone(cmd.Context(), c, it.info, it.ns, it.name, uids[i]); err != nil {
					failed = true
					o.reportError(err)
				}
			}
			if failed {
				return ErrReported
			}
			return nil
		},
		ValidArgsFunction: completeKinds,
	}
	cmd.Flags().Int64Var(&grace, "grace-period", -1, "seconds a pod gets to stop (-1: its own terminationGracePeriodSeconds; 0 needs --force)")
	cmd.Flags().BoolVar(&force, "force", false, "with --grace-period 0: remove the objects at once, without waiting for their nodes")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until objects being deleted gracefully are gone")
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "process directories recursively")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat a missing object as deleted")
	return cmd
}

// waitGone polls until the object of that UID is gone (Ctrl-C stops it).
func waitGone(ctx context.Context, c *client.Client, info api.ResourceInfo, ns, name string, uid api.UID) error {
	for {
		o, err := c.Get(ctx, info.Kind, ns, name)
		switch {
		case isNotFound(err):
			return nil
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("waiting for %s %q to go: %w", kindName(info), name, ctx.Err())
		case err == nil && o.GetObjectMeta().UID != uid:
			return nil // gone, and a new one of the same name exists
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s %q to go: %w", kindName(info), name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
