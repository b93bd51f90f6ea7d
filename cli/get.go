package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// outputFormat is a value of -o.
type outputFormat string

const (
	outputTable outputFormat = ""
	outputWide  outputFormat = "wide"
	outputJSON  outputFormat = "json"
	outputYAML  outputFormat = "yaml"
	outputName  outputFormat = "name"
)

func parseOutput(s string) (outputFormat, error) {
	switch f := outputFormat(s); f {
	case outputTable, outputWide, outputJSON, outputYAML, outputName:
		return f, nil
	}
	return "", fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: json,name,wide,yaml", s)
}

type getOptions struct {
	*options
	allNamespaces bool
	labels        string
	fieldSel      string
	output        string
	watch         bool
	watchOnly     bool
}

// target is one kind and the names asked for (none: all of them).
type target struct {
	info  api.ResourceInfo
	names []string
}

func newGetCmd(o *options) *cobra.Command {
	g := &getOptions{options: o}
	cmd := &cobra.Command{
		Use:   "get KIND[,KIND...] [NAME...] | KIND/NAME...",
		Short: "Display one or many objects",
		Long: `Display one or many objects as a table, or as JSON, YAML or names.

Kinds are spelled as in kubectl: plural, singular, or short name (po, deploy,
ds, svc, ep, no, ns, ev), optionally with the group (deployments.apps).
Several kinds separated by commas print one table each.

With -w, get lists, then prints a row for every change until interrupted.`,
		Example: `  # Deployments and Services of the current namespace
  skiff get deploy,svc

  # Pods of every namespace, with their IP and node
  skiff get pods -A -o wide

  # One Deployment as YAML
  skiff get deploy web -o yaml

  # Pods with a label, and watch them change
  skiff get pods -l app=web -w

  # Pods bound to a node
  skiff get pods --field-selector spec.nodeName=node-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd.Context(), args)
		},
		ValidArgsFunction: completeKinds,
	}
	f := cmd.Flags()
	f.BoolVarP(&g.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.StringVarP(&g.labels, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	f.StringVar(&g.fieldSel, "field-selector", "", "field selector, e.g. spec.nodeName=node-1,status.phase=Running")
	f.StringVarP(&g.output, "output", "o", "", "output format: wide, json, yaml or name")
	f.BoolVarP(&g.watch, "watch", "w", false, "after listing, watch for changes")
	f.BoolVar(&g.watchOnly, "watch-only", false, "watch for changes without listing first")
	return cmd
}

// completeKinds offers resource names for the first argument.
func completeKinds(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, r := range api.Resources() {
		out = append(out, r.Resource)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// allCategory is what `get all` lists, in kubectl's order.
var allCategory = []string{"pods", "services", "daemonsets", "deployments"}

// parseTargets reads "KIND[,KIND] [NAME...]" or "KIND/NAME...".
func parseTargets(args []string) ([]target, error) {
	if strings.Contains(args[0], "/") {
		var out []target
		for _, a := range args {
			kind, name, ok := strings.Cut(a, "/")
			if !ok || kind == "" || name == "" {
				return nil, fmt.Errorf("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'): %q", a)
			}
			info, err := resource(kind)
			if err != nil {
				return nil, err
			}
			if n := len(out); n > 0 && out[n-1].info.Kind == info.Kind {
				out[n-1].names = append(out[n-1].names, name)
			} else {
				out = append(out, target{info: info, names: []string{name}})
			}
		}
		return out, nil
	}
	var out []target
	for _, k := range strings.Split(args[0], ",") {
		if k == "" {
			continue
		}
		if k == "all" { // kubectl's category of the workload kinds
			for _, r := range allCategory {
				info, _ := api.ByResource(r)
				out = append(out, target{info: info, names: args[1:]})
			}
			continue
		}
		info, err := resource(k)
		if err != nil {
			return nil, err
		}
		out = append(out, target{info: info, names: args[1:]})
	}
	if len(out) == 0 {
		return nil, errors.New("you must specify the type of resource to get")
	}
	return out, nil
}

func (g *getOptions) run(ctx context.Context, args []string) error {
	format, err := parseOutput(g.output)
	if err != nil {
		return err
	}
	targets, err := parseTargets(args)
	if err != nil {
		return err
	}
	if g.allNamespaces && anyNamed(targets) {
		return errors.New("a resource cannot be retrieved by name across all namespaces")
	}
	if (g.watch || g.watchOnly) && (len(targets) > 1 || len(targets[0].names) > 1) {
		return errors.New("watch is only supported on a single kind and at most one name")
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	if g.watch || g.watchOnly {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return g.watchTarget(ctx, c, targets[0], format)
	}

	p := g.printer(format, len(targets) > 1)
	var all []api.Object
	found, tables, failed := 0, 0, false
	for _, t := range targets {
		objs, errs := g.fetch(ctx, c, t)
		for _, err := range errs {
			failed = true
			g.reportError(err)
		}
		found += len(objs)
		switch format {
		case outputJSON, outputYAML:
			all = append(all, objs...)
		case outputName:
			for _, o := range objs {
				fmt.Fprintln(g.out, qualifiedName(t.info, o.GetObjectMeta().Name))
			}
		default:
			if len(objs) == 0 {
				continue
			}
			if tables > 0 {
				fmt.Fprintln(g.out)
			}
			tables++
			rows := [][]string{p.header(t.info)}
			for _, o := range objs {
				rows = append(rows, p.row(t.info, mustFields(o)))
			}
			(&table{w: g.out}).add(rows...)
		}
	}
	if format == outputJSON || format == outputYAML {
		var doc any = newListDoc(all)
		if len(targets) == 1 && len(targets[0].names) == 1 {
			doc = nil // a single named object prints as itself
			if len(all) == 1 {
				doc = all[0]
			}
		}
		if doc != nil {
			if err := printDoc(g.out, format, doc); err != nil {
				return err
			}
		}
	}
	if failed {
		return ErrReported
	}
	if found == 0 && !anyNamed(targets) && format != outputJSON && format != outputYAML {
		fmt.Fprintln(g.errOut, g.noResources(targets))
	}
	return nil
}

func printDoc(w io.Writer, format outputFormat, doc any) error {
	if format == outputYAML {
		return printYAML(w, doc)
	}
	return printJSON(w, doc)
}

func (g *getOptions) printer(format outputFormat, qualify bool) tablePrinter {
	return tablePrinter{now: g.now, wide: format == outputWide, withNamespace: g.allNamespaces, qualify: qualify}
}

func anyNamed(ts []target) bool {
	for _, t := range ts {
		if len(t.names) > 0 {
			return true
		}
	}
	return false
}

// noResources is kubectl's message for an empty answer.
func (g *getOptions) noResources(ts []target) string {
	namespaced := false
	for _, t := range ts {
		namespaced = namespaced || t.info.Namespaced
	}
	if g.allNamespaces || !namespaced {
		return "No resources found"
	}
	return fmt.Sprintf("No resources found in %s namespace.", g.namespace)
}

func (g *getOptions) listOptions(t target) client.ListOptions {
	opts := client.ListOptions{
		Namespace:     g.namespaceFor(t.info),
		LabelSelector: g.labels,
		FieldSelector: g.fieldSel,
	}
	if g.allNamespaces {
		opts.Namespace = ""
	}
	return opts
}

// fetch reads the objects of one target: a list, or each name (a missing
// name is an error for that name only).
func (g *getOptions) fetch(ctx context.Context, c *client.Client, t target) ([]api.Object, []error) {
	ctx, cancel := g.requestContext(ctx)
	defer cancel()
	if len(t.names) == 0 {
		l, err := c.List(ctx, t.info.Kind, g.listOptions(t))
		if err != nil {
			return nil, []error{err}
		}
		out := make([]api.Object, len(l.Items))
		for i, o := range l.Items {
			out[i] = withTypeMeta(t.info, o)
		}
		return out, nil
	}
	var out []api.Object
	var errs []error
	for _, name := range t.names {
		o, err := c.Get(ctx, t.info.Kind, g.namespaceFor(t.info), name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, withTypeMeta(t.info, o))
	}
	return out, errs
}

// watchTarget lists (printing unless --watch-only), then prints every
// change from the list's resourceVersion on until ctx ends.
func (g *getOptions) watchTarget(ctx context.Context, c *client.Client, t target, format outputFormat) error {
	opts := g.listOptions(t)
	name := ""
	if len(t.names) == 1 {
		name = t.names[0]
		sel := "metadata.name=" + name
		if opts.FieldSelector != "" {
			sel = opts.FieldSelector + "," + sel
		}
		opts.FieldSelector = sel
	}
	lctx, cancel := g.requestContext(ctx)
	list, err := c.List(lctx, t.info.Kind, opts)
	cancel()
	if err != nil {
		return err
	}
	w := &watchPrinter{out: g.out, format: format, info: t.info, p: g.printer(format, false), tw: &table{w: g.out}}
	if !g.watchOnly {
		for _, o := range list.Items {
			if err := w.print(withTypeMeta(t.info, o)); err != nil {
				return err
			}
		}
	}
	watch, err := c.Watch(ctx, t.info.Kind, opts, list.ResourceVersion)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-watch.Events():
			if !ok {
				if err := watch.Err(); err != nil && ctx.Err() == nil {
					return err
				}
				return nil
			}
			switch ev.Type {
			case client.Added, client.Modified, client.Deleted:
				if ev.Object == nil || (name != "" && ev.Object.GetObjectMeta().Name != name) {
					continue
				}
				if err := w.print(withTypeMeta(t.info, ev.Object)); err != nil {
					return err
				}
			}
		}
	}
}

// watchPrinter prints the objects of a watch one at a time: table rows
// under one header, one compact JSON object per line, YAML documents, or
// names.
type watchPrinter struct {
	out    io.Writer
	format outputFormat
	info   api.ResourceInfo
	p      tablePrinter
	tw     *table
	header bool
}

func (w *watchPrinter) print(o api.Object) error {
	switch w.format {
	case outputJSON:
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w.out, "%s\n", b)
		return err
	case outputYAML:
		fmt.Fprintln(w.out, "---")
		return printYAML(w.out, o)
	case outputName:
		_, err := fmt.Fprintln(w.out, qualifiedName(w.info, o.GetObjectMeta().Name))
		return err
	}
	row := w.p.row(w.info, mustFields(o))
	if !w.header {
		w.header = true
		w.tw.add(w.p.header(w.info), row)
		return nil
	}
	w.tw.add(row)
	return nil
}
