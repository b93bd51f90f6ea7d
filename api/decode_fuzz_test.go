package api

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode checks that no input makes Decode, Default, Validate or
// ValidateUpdate panic.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}]}`,
		"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, resources: {limits: {cpu: 1e3}}}]}\n",
		"---\n---\n",
		"apiVersion: apps/v1\nkind: DaemonSet\nspec: {updateStrategy: {rollingUpdate: {maxSurge: 10%}}}\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {taints: [{key: k, effect: NoSchedule}]}\nstatus: {capacity: {cpu: 4, memory: 8Gi}}\n",
		"apiVersion: v1\nkind: Event\ninvolvedObject: {kind: Pod}\nlastTimestamp: 2024-01-01T00:00:00Z\n",
		"apiVersion: v1\nkind: Endpoints\nsubsets: [{addresses: [{ip: 1.2.3.4, nodeName: n}], ports: [{port: 80}]}]\n",
		"apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {name: r}\ndata: {spec: {containers: [{name: c, image: i}]}}\nrevision: 0\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data)
		if err != nil {
			return
		}
		for _, o := range objs {
			old := DeepCopy(o)
			Default(o)
			_ = Validate(o)
			_ = ValidateUpdate(o, old)
			_ = FieldsOf(o)
		}
	})
}
