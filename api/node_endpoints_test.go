package api

import (
	"strings"
	"testing"
)

func TestNodeDaemonEndpoints(t *testing.T) {
	const manifest = `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}],
"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}}`
	for name, decode := range map[string]func([]byte) (Object, error){
		"DecodeObject": DecodeObject,
		"DecodeAs":     func(b []byte) (Object, error) { info, _ := ByKind(KindNode); return DecodeAs(b, info) },
	} {
		o, err := decode([]byte(manifest))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := o.(*Node)
		if n.Status.DaemonEndpoints == nil || n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
			t.Errorf("%s: daemonEndpoints = %+v", name, n.Status.DaemonEndpoints)
		}
		if errs := Validate(n); len(errs) > 0 {
			t.Errorf("%s: valid node refused: %v", name, errs)
		}
	}

	bad := &Node{TypeMeta: TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: ObjectMeta{Name: "n1"},
		Status: NodeStatus{DaemonEndpoints: &NodeDaemonEndpoints{KubeletEndpoint: DaemonEndpoint{Port: 70000}}}}
	errs := Validate(bad)
	if len(errs) != 1 || errs[0].Field != "status.daemonEndpoints.kubeletEndpoint.Port" || !strings.Contains(errs[0].Detail, "between 1 and 65535") {
		t.Errorf("port 70000: %v", errs)
	}
}
