package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// historyClient is what rollout history and undo need from the API.
type historyClient interface {
	Get(ctx context.Context, kind api.Kind, namespace, name string) (api.Object, error)
	List(ctx context.Context, kind api.Kind, opts client.ListOptions) (*client.List, error)
	Update(ctx context.Context, o api.Object) (api.Object, error)
}

var _ historyClient = (*client.Client)(nil)

// undoAttempts bounds the re-read-and-retry loop of an undo that keeps
// conflicting with other writers (the Deployment controller among them).
const undoAttempts = 10

func newRolloutHistoryCmd(o *options) *cobra.Command {
	var revision int64
	cmd := &cobra.Command{
		Use:   "history deployment/NAME [--revision N]",
		Short: "List the revisions of a Deployment, or show one",
		Long: `List the revisions of a Deployment: one per pod template it rolled out, numbered
in rollout order. A template rolled out again (by ` + "`skiff rollout undo`" + `, or by
applying it anew) takes the next number.

CHANGE-CAUSE is the Deployment's kubernetes.io/change-cause annotation while
that template was current: put it in the manifest along with the change, or
annotate the Deployment just after, to say why.

Besides the current revision, the Deployment keeps up to
spec.revisionHistoryLimit (default 10) old revisions whose pods are gone,
deleting the oldest first; revisions with pods left are always kept.

With --revision, show that revision's pod template.`,
		Example: `  skiff rollout history deployment/web
  skiff rollout history deploy web --revision 3`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentArg(args)
			if err != nil {
				return err
			}
			if revision < 0 {
				return fmt.Errorf("--revision %d: must be a positive number", revision)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			h, err := loadHistory(ctx, c, o.namespace, name)
			if err != nil {
				return err
			}
			if revision > 0 {
				r := h.revision(revision)
				if r == nil {
					return fmt.Errorf("unable to find specified revision %d in history", revision)
				}
				printRevision(o.out, name, r)
				return nil
			}
			printHistory(o.out, name, h.revs)
			return nil
		},
	}
	cmd.Flags().Int64Var(&revision, "revision", 0, "show the pod template of this revision")
	return cmd
}

func newRolloutUndoCmd(o *options) *cobra.Command {
	var toRevision int64
	cmd := &cobra.Command{
		Use:   "undo deployment/NAME [--to-revision N]",
		Short: "Roll a Deployment back to an earlier revision",
		Long: `Set a Deployment's pod template to the one of an earlier revision (and its
change-cause annotation to that revision's), and let the Deployment roll it
out as any template change: the revision becomes the newest one.

Without --to-revision, go back to the previous revision: the highest below
the current template's. The write is conditional on the Deployment read
(its resourceVersion) and is redone against a fresh read when someone else
wrote in between. A paused Deployment takes the template now and rolls it
out once resumed (spec.paused: false).`,
		Example: `  # Back to the previous template
  skiff rollout undo deployment/web

  # Back to revision 3 of "skiff rollout history deploy/web"
  skiff rollout undo deploy web --to-revision 3`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := deploymentArg(args)
			if err != nil {
				return err
			}
			if toRevision < 0 {
				return fmt.Errorf("--to-revision %d: must be a positive number (0: the previous revision)", toRevision)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := o.requestContext(cmd.Context())
			defer cancel()
			msg, err := undoDeployment(ctx, c, o.namespace, name, toRevision)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.out, "deployment.apps/%s %s\n", name, msg)
			return nil
		},
	}
	cmd.Flags().Int64Var(&toRevision, "to-revision", 0, "the revision to roll back to (default: the previous one)")
	return cmd
}

// deploymentHistory is a Deployment and the revisions it controls, lowest
// number first.
type deploymentHistory struct {
	d    *api.Deployment
	revs []*api.ControllerRevision
}

// loadHistory reads a Deployment and its revisions: those its selector
// matches (the controller labels them with the template's labels) and that
// it controls (by uid, so a namesake's leftovers do not count).
func loadHistory(ctx context.Context, c historyClient, ns, name string) (*deploymentHistory, error) {
	o, err := c.Get(ctx, api.KindDeployment, ns, name)
	if err != nil {
		return nil, err
	}
	d := o.(*api.Deployment)
	opts := client.ListOptions{Namespace: ns}
	if d.Spec.Selector != nil {
		opts.LabelSelector = d.Spec.Selector.String()
	}
	l, err := c.List(ctx, api.KindControllerRevision, opts)
	if err != nil {
		return nil, fmt.Errorf("list the revisions of deployment %q: %w", name, err)
	}
	h := &deploymentHistory{d: d}
	for _, o := range l.Items {
		r := o.(*api.ControllerRevision)
		for _, ref := range r.OwnerReferences {
			if ref.Controller != nil && *ref.Controller && api.Kind(ref.Kind) == api.KindDeployment && ref.UID == d.UID {
				h.revs = append(h.revs, r)
				break
			}
		}
	}
	sort.Slice(h.revs, func(i, j int) bool { return h.revs[i].Revision < h.revs[j].Revision })
	return h, nil
}

// revision returns revision n, or nil.
func (h *deploymentHistory) revision(n int64) *api.ControllerRevision {
	for _, r := range h.revs {
		if r.Revision == n {
			return r
		}
	}
	return nil
}

// current returns the revision of the Deployment's template, or nil when
// the controller has not recorded it yet.
func (h *deploymentHistory) current() *api.ControllerRevision {
	var cur *api.ControllerRevision
	for _, r := range h.revs {
		if sameTemplate(&r.Data, &h.d.Spec.Template) {
			cur = r // the highest, should two match
		}
	}
	return cur
}

// undoTarget is the revision undo goes to: toRevision, or (0) the highest
// revision below the current template's; below none when the current
// template has no revision yet, so undo then returns to the one it
// replaced.
func (h *deploymentHistory) undoTarget(toRevision int64) (*api.ControllerRevision, error) {
	if toRevision > 0 {
		if r := h.revision(toRevision); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("unable to find specified revision %d in history", toRevision)
	}
	if len(h.revs) == 0 {
		return nil, fmt.Errorf("no rollout history found for deployment %q", h.d.Name)
	}
	below := int64(-1)
	if cur := h.current(); cur != nil {
		below = cur.Revision
	}
	var prev *api.ControllerRevision
	for _, r := range h.revs {
		if below < 0 || r.Revision < below {
			prev = r
		}
	}
	if prev == nil {
		return nil, fmt.Errorf("deployment %q has no revision before %d to roll back to", h.d.Name, below)
	}
	return prev, nil
}

// sameTemplate compares templates as the controller hashes them: by their
// JSON.
func sameTemplate(a, b *api.PodTemplateSpec) bool {
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && string(ja) == string(jb)
}

// undoDeployment sets the template of Deployment ns/name to that of an
// earlier revision (see undoTarget) with a write conditional on the
// Deployment read, and on a conflict reads everything again and decides
// anew. It returns what it did, in kubectl's words.
func undoDeployment(ctx context.Context, c historyClient, ns, name string, toRevision int64) (string, error) {
	var err error
	for attempt := 0; attempt < undoAttempts; attempt++ {
		var h *deploymentHistory
		if h, err = loadHistory(ctx, c, ns, name); err != nil {
			return "", err
		}
		target, terr := h.undoTarget(toRevision)
		if terr != nil {
			return "", terr
		}
		if sameTemplate(&target.Data, &h.d.Spec.Template) {
			return fmt.Sprintf("skipped rollback (current template already matches revision %d)", target.Revision), nil
		}
		next := api.DeepCopy(h.d)
		next.Spec.Template = api.DeepCopy(&api.ControllerRevision{Data: target.Data}).Data
		// The change-cause goes back with the template, so the revision
		// the controller renumbers keeps its own.
		if cause, ok := target.Annotations[api.ChangeCauseAnnotation]; ok {
			if next.Annotations == nil {
				next.Annotations = map[string]string{}
			}
			next.Annotations[api.ChangeCauseAnnotation] = cause
		} else {
			delete(next.Annotations, api.ChangeCauseAnnotation)
		}
		if _, err = c.Update(ctx, next); err == nil {
			return "rolled back", nil
		}
		if !client.IsConflict(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("gave up after %d attempts: %w", undoAttempts, err)
}

// printHistory writes kubectl's revision table.
func printHistory(w io.Writer, name string, revs []*api.ControllerRevision) {
	if len(revs) == 0 {
		fmt.Fprintln(w, "No rollout history found.")
		return
	}
	fmt.Fprintf(w, "deployment.apps/%s\n", name)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tCHANGE-CAUSE")
	for _, r := range revs {
		fmt.Fprintf(tw, "%s\t%s\n", strconv.FormatInt(r.Revision, 10), orNone(r.Annotations[api.ChangeCauseAnnotation]))
	}
	tw.Flush()
}

// printRevision writes one revision's pod template, as describe does, with
// the revision's change-cause among the template's annotations (where
// kubectl shows it).
func printRevision(w io.Writer, name string, r *api.ControllerRevision) {
	fmt.Fprintf(w, "deployment.apps/%s with revision #%d\n", name, r.Revision)
	t := mustFields(&r.Data)
	if cause, ok := r.Annotations[api.ChangeCauseAnnotation]; ok {
		t.set(cause, "metadata", "annotations", api.ChangeCauseAnnotation)
	}
	d := &describer{w: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	describeTemplate(d, t)
	d.w.Flush()
}
