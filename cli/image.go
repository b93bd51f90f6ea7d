package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

func newImageCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Import and list the images of nodes",
		Long: `Import container images into nodes' runtimes and list them, without a
registry: an image built with ` + "`make images`" + ` (or saved with ` + "`docker save`" + `)
is sent through the API server to each node's agent, which loads it into its
containerd. Pods then run it with imagePullPolicy IfNotPresent or Never.`,
	}
	cmd.AddCommand(newImageImportCmd(o), newImageListCmd(o))
	return cmd
}

func newImageImportCmd(o *options) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "import FILE.tar [--node NODE]",
		Short: "Load an OCI or docker-save tarball into nodes",
		Long: `Load every image of an OCI image layout or docker-save tarball into the
container runtime of a node, or of every Ready node that runs containers
(simulated nodes have no runtime to load into). A node either imports every
image of the archive or none; a malformed archive is refused with the
runtime's reason.`,
		Example: `  # The example workload, into every node
  make images
  skiff image import bin/images/echo.tar

  # Into one node
  skiff image import app.tar --node worker-2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			st, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("image archive: %w", err)
			}
			if st.IsDir() {
				return fmt.Errorf("image archive %s is a directory: pack the OCI layout in a tarball first", path)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			nodes, err := o.imageNodes(ctx, c, node)
			if err != nil {
				return err
			}
			failed := false
			for _, n := range nodes {
				if err := o.importInto(ctx, c, n, path, st.Size()); err != nil {
					if ctx.Err() != nil {
						return err
					}
					fmt.Fprintf(o.errOut, "node %s: ", n)
					o.reportError(err)
					failed = true
				}
			}
			if failed {
				return ErrReported
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node to import into (default: every Ready node that runs containers)")
	return cmd
}

// importInto sends the archive at path to one node and prints what it
// imported.
func (o *options) importInto(ctx context.Context, c *client.Client, node, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	var p *progress
	if size >= progressMinSize {
		p = newProgress(o.errOut, fmt.Sprintf("%s -> %s", path, node), size, o.now)
		r = io.TeeReader(f, p)
	}
	imgs, err := c.ImportImages(ctx, node, r, size)
	if p != nil {
		p.finish()
	}
	if err != nil {
		return err
	}
	for _, i := range imgs {
		fmt.Fprintf(o.out, "node %s: imported %s (%s)\n", node, i.Ref, shortID(i.ID))
	}
	return nil
}

func newImageListCmd(o *options) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:     "ls [--node NODE]",
		Aliases: []string{"list"},
		Short:   "List the images of nodes",
		Example: `  skiff image ls
  skiff image ls --node worker-2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			nodes, err := o.imageNodes(ctx, c, node)
			if err != nil {
				return err
			}
			rows := [][]string{{"NODE", "IMAGE", "IMAGE ID", "SIZE"}}
			failed := false
			for _, n := range nodes {
				imgs, err := c.ListImages(ctx, n)
				if err != nil {
					fmt.Fprintf(o.errOut, "node %s: ", n)
					o.reportError(err)
					failed = true
					continue
				}
				slices.SortFunc(imgs, func(a, b client.NodeImage) int { return strings.Compare(a.Ref, b.Ref) })
				for _, i := range imgs {
					rows = append(rows, []string{n, i.Ref, shortID(i.ID), humanBytes(i.Size)})
				}
			}
			(&table{w: o.out}).add(rows...) // one call: the columns fit every row
			if failed {
				return ErrReported
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node to list (default: every Ready node that runs containers)")
	return cmd
}

// imageNodes are the nodes an image command addresses: the one named, or
// every Ready node that reports an agent endpoint (simulated nodes report
// none).
func (o *options) imageNodes(ctx context.Context, c *client.Client, named string) ([]string, error) {
	if named != "" {
		return []string{named}, nil
	}
	lctx, cancel := o.requestContext(ctx)
	defer cancel()
	list, err := c.List(lctx, api.KindNode, client.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, obj := range list.Items {
		n, ok := obj.(*api.Node)
		if !ok || n.Status.DaemonEndpoints == nil || !nodeReady(n) {
			continue
		}
		out = append(out, n.Name)
	}
	if len(out) == 0 {
		return nil, errors.New("no Ready node runs containers (simulated nodes take no images): start an agent, or name a node with --node")
	}
	slices.Sort(out)
	return out, nil
}

func nodeReady(n *api.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == api.NodeReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}

// shortID is an image ID as crictl shows it: 13 hex digits of the digest.
func shortID(id string) string {
	_, hex, found := strings.Cut(id, ":")
	if !found {
		hex = id
	}
	if len(hex) > 13 {
		hex = hex[:13]
	}
	return hex
}

// humanBytes formats a size with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressMinSize: smaller archives upload without a progress display.
const progressMinSize = 8 << 20

// progress shows how much of an upload was sent: a line rewritten in
// place on a terminal, else a line every 25%.
type progress struct {
	w        io.Writer
	label    string
	total    int64
	sent     int64
	now      func() time.Time
	tty      bool
	last     time.Time
	lastStep int64
}

func newProgress(w io.Writer, label string, total int64, now func() time.Time) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, label: label, total: total, now: now, tty: ok && term.IsTerminal(int(f.Fd()))}
}

// Write counts bytes read from the archive (progress is a TeeReader's
// writer).
func (p *progress) Write(b []byte) (int, error) {
	p.sent += int64(len(b))
	if p.tty {
		if t := p.now(); t.Sub(p.last) >= 200*time.Millisecond || p.sent == p.total {
			p.last = t
			fmt.Fprintf(p.w, "\r%s: %s", p.label, p.status())
		}
		return len(b), nil
	}
	if step := p.sent * 4 / p.total; step > p.lastStep {
		p.lastStep = step
		fmt.Fprintf(p.w, "%s: %s\n", p.label, p.status())
	}
	return len(b), nil
}

func (p *progress) status() string {
	return fmt.Sprintf("%3d%% (%s of %s)", p.sent*100/p.total, humanBytes(p.sent), humanBytes(p.total))
}

// finish ends the display once the node has answered.
func (p *progress) finish() {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s: %s\n", p.label, p.status())
	}
}
