package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/api"
)

// listDoc is the shape kubectl prints for `-o json|yaml` of several
// objects.
type listDoc struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Items      []api.Object `json:"items"`
	Metadata   listMeta     `json:"metadata"`
}

type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
}

func newListDoc(items []api.Object) listDoc {
	if items == nil {
		items = []api.Object{}
	}
	return listDoc{APIVersion: "v1", Kind: "List", Items: items}
}

// withTypeMeta makes sure an object prints its apiVersion and kind (list
// items may come without them).
func withTypeMeta(info api.ResourceInfo, o api.Object) api.Object {
	tm := o.GetTypeMeta()
	if tm.Kind == "" || tm.APIVersion == "" {
		tm.Kind = string(info.Kind)
		tm.APIVersion = info.APIVersion()
	}
	return o
}

// printJSON prints v indented by four spaces, as kubectl does.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
