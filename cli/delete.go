package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

func newDeleteCmd(o *options) *cobra.Command {
	var files []string
	var recursive, ignoreNotFound bool
	cmd := &cobra.Command{
		Use:   "delete (-f FILENAME | KIND NAME... | KIND/NAME...)",
		Short: "Delete objects by name or by manifest",
		Long: `Delete objects named on the command line, or every object of the given
manifests. A missing object is an error unless --ignore-not-found is given.`,
		Example: `  # Delete what a manifest created
  skiff delete -f examples/web.yaml

  # Delete a Deployment and a Service by name
  skiff delete deploy web
  skiff delete svc/web

  # No error when it is already gone
  skiff delete deploy web --ignore-not-found`,
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
			c, err := o.client()
			if err != nil {
				return err
			}
			failed := false
			for _, it := range items {
				ctx, cancel := o.requestContext(cmd.Context())
				_, err := c.Delete(ctx, it.info.Kind, it.ns, it.name, client.DeleteOptions{})
				cancel()
				switch {
				case err == nil:
					fmt.Fprintf(o.out, "%s %q deleted\n", kindName(it.info), it.name)
				case isNotFound(err) && ignoreNotFound:
				default:
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
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "process directories recursively")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "treat a missing object as deleted")
	return cmd
}
