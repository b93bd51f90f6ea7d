package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffhq/skiff/api"
)

// LastAppliedAnnotation holds the manifest an object was last applied from
// (its JSON), like kubectl's last-applied-configuration: apply compares
// against it to tell "unchanged" from "configured", and to know which
// labels and annotations it owns.
const LastAppliedAnnotation = "skiff.io/last-applied"

// applyAttempts bounds the refetch-and-retry loop on conflicts.
const applyAttempts = 5

// applyAction is what apply did to one object; the words are kubectl's.
type applyAction string

const (
	actionCreated    applyAction = "created"
	actionConfigured applyAction = "configured"
	actionUnchanged  applyAction = "unchanged"
)

// objectClient is what apply and delete need from the API.
type objectClient interface {
	Get(ctx context.Context, kind api.Kind, namespace, name string) (api.Object, error)
	Create(ctx context.Context, o api.Object) (api.Object, error)
	Update(ctx context.Context, o api.Object) (api.Object, error)
}

func newApplyCmd(o *options) *cobra.Command {
	var files []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Create or update objects from manifests",
		Long: `Create or update objects from Kubernetes-style manifests (YAML or JSON, several
documents per file). Every file is decoded and checked before anything is sent:
all errors are reported at once and nothing is changed if there is one.

An object that does not exist is created; one that exists is updated to the
manifest (fields the server fills in, like a Service's clusterIP, are kept) or
left alone when the manifest is the one applied last. The manifest is recorded
in the annotation ` + LastAppliedAnnotation + `.`,
		Example: `  # Apply a file
  skiff apply -f examples/web.yaml

  # Apply every *.yaml, *.yml and *.json file of a directory, in name order
  skiff apply -f manifests/

  # Apply from stdin into namespace "staging"
  cat web.yaml | skiff apply -n staging -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readManifests(files, recursive, o.in, o.namespace, cmd.Flags().Changed("namespace"))
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			failed := false
			for _, m := range objs {
				ctx, cancel := o.requestContext(cmd.Context())
				action, err := applyObject(ctx, c, m.Info, m.Object)
				cancel()
				if err != nil {
					failed = true
					o.reportError(fmt.Errorf("%s: %s: %w", m.Source, qualifiedName(m.Info, m.Object.GetObjectMeta().Name), err))
					continue
				}
				fmt.Fprintf(o.out, "%s %s\n", qualifiedName(m.Info, m.Object.GetObjectMeta().Name), action)
			}
			if failed {
				return ErrReported
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory, or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "process directories recursively")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// applyObject creates or updates one object. A conflict (someone else
// wrote the object between our read and our write) is retried against a
// fresh read.
func applyObject(ctx context.Context, c objectClient, info api.ResourceInfo, manifest api.Object) (applyAction, error) {
	meta := manifest.GetObjectMeta()
	var lastErr error
	for attempt := 0; attempt < applyAttempts; attempt++ {
		cur, err := c.Get(ctx, info.Kind, meta.Namespace, meta.Name)
		if isNotFound(err) {
			obj, err := newApplied(info, manifest)
			if err != nil {
				return "", err
			}
			if _, err := c.Create(ctx, obj); err != nil {
				if isAlreadyExists(err) {
					lastErr = err
					continue
				}
				return "", err
			}
			return actionCreated, nil
		}
		if err != nil {
			return "", err
		}
		obj, changed, err := planApply(info, manifest, cur)
		if err != nil {
			return "", err
		}
		if !changed {
			return actionUnchanged, nil
		}
		if _, err := c.Update(ctx, obj); err != nil {
			if isConflict(err) || isNotFound(err) {
				lastErr = err
				continue
			}
			return "", err
		}
		return actionConfigured, nil
	}
	return "", fmt.Errorf("gave up after %d attempts: %w", applyAttempts, lastErr)
}

// appliedConfig is the canonical JSON of a manifest as recorded in the
// annotation: what the user wrote, without what the server owns.
func appliedConfig(manifest api.Object) (string, fields, error) {
	f, err := toFields(manifest)
	if err != nil {
		return "", nil, err
	}
	for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation"} {
		f.del("metadata", k)
	}
	f.del("status")
	if ann := f.obj("metadata", "annotations"); ann != nil {
		delete(ann, LastAppliedAnnotation)
		if len(ann) == 0 {
			f.del("metadata", "annotations")
		}
	}
	b, err := json.Marshal(f) // map keys sorted: canonical
	if err != nil {
		return "", nil, err
	}
	return string(b), f, nil
}

// newApplied is the object apply creates: the manifest plus its record.
func newApplied(info api.ResourceInfo, manifest api.Object) (api.Object, error) {
	cfg, f, err := appliedConfig(manifest)
	if err != nil {
		return nil, err
	}
	f.set(cfg, "metadata", "annotations", LastAppliedAnnotation)
	return toObject(info, f)
}

// planApply computes the update that makes current match manifest, and
// whether one is needed (false when current was last applied from this
// very manifest).
//
// The update is the manifest, plus what the server and other writers own:
// metadata the store sets, status, owner references and finalizers, labels
// and annotations that the previous apply did not set, and spec fields the
// server fills in when the manifest leaves them out.
func planApply(info api.ResourceInfo, manifest, current api.Object) (api.Object, bool, error) {
	cfg, want, err := appliedConfig(manifest)
	if err != nil {
		return nil, false, err
	}
	cur, err := toFields(current)
	if err != nil {
		return nil, false, err
	}
	prevCfg := cur.str("metadata", "annotations", LastAppliedAnnotation)
	if prevCfg == cfg {
		return current, false, nil
	}
	prev := fields{}
	if prevCfg != "" {
		if p, err := fieldsFromJSON([]byte(prevCfg)); err == nil {
			prev = p
		}
	}

	for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "ownerReferences", "finalizers"} {
		if v := cur.get("metadata", k); v != nil && !want.has("metadata", k) {
			want.set(v, "metadata", k)
		}
	}
	for _, k := range []string{"labels", "annotations"} {
		m := mergeOwned(cur.obj("metadata", k), prev.obj("metadata", k), want.obj("metadata", k))
		if len(m) > 0 {
			want.set(map[string]any(m), "metadata", k)
		} else {
			want.del("metadata", k)
		}
	}
	want.set(cfg, "metadata", "annotations", LastAppliedAnnotation)
	if st := cur.get("status"); st != nil {
		want.set(st, "status")
	}
	keepServerFields(info.Kind, want, cur)

	obj, err := toObject(info, want)
	if err != nil {
		return nil, false, err
	}
	return obj, true, nil
}

// mergeOwned is a three-way merge of a string map: keys the previous apply
// set and the manifest no longer has are removed, the manifest's keys win,
// and keys that someone else added stay.
func mergeOwned(current, previous, manifest fields) fields {
	out := fields{}
	for k, v := range current {
		if _, owned := previous[k]; owned {
			continue
		}
		out[k] = v
	}
	for k, v := range manifest {
		out[k] = v
	}
	return out
}

// keepServerFields copies spec fields that the server allocates or sets
// from current into want when the manifest leaves them out; sending them
// empty would ask the server to drop (or re-allocate) them.
func keepServerFields(kind api.Kind, want, cur fields) {
	keep := func(path ...string) {
		if !want.has(path...) && cur.has(path...) {
			want.set(cur.get(path...), path...)
		}
	}
	switch kind {
	case api.KindService:
		typ := want.str("spec", "type")
		if typ == "ExternalName" {
			return
		}
		for _, k := range []string{"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"} {
			keep("spec", k)
		}
		if typ != "NodePort" && typ != "LoadBalancer" {
			return
		}
		if typ == "LoadBalancer" {
			keep("spec", "healthCheckNodePort")
		}
		curPorts := cur.list("spec", "ports")
		for _, p := range want.list("spec", "ports") {
			if p.has("nodePort") {
				continue
			}
			if cp := matchPort(p, curPorts); cp != nil && cp.has("nodePort") {
				p["nodePort"] = cp.get("nodePort")
			}
		}
	case api.KindPod:
		keep("spec", "nodeName")
	}
}

// matchPort finds the current port a manifest port stands for: by name,
// else by port number and protocol.
func matchPort(p fields, ports []fields) fields {
	proto := func(f fields) string {
		if s := f.str("protocol"); s != "" {
			return s
		}
		return "TCP"
	}
	for _, cp := range ports {
		if name := p.str("name"); name != "" {
			if cp.str("name") == name {
				return cp
			}
			continue
		}
		if cp.str("port") == p.str("port") && proto(cp) == proto(p) {
			return cp
		}
	}
	return nil
}
