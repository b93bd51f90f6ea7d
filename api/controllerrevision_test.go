package api

import (
	"strings"
	"testing"
)

// validRevision returns a defaulted, valid ControllerRevision of the nginx
// Deployment's template.
func validRevision(t testing.TB) *ControllerRevision {
	t.Helper()
	o, err := DecodeObject(readTestdata(t, "nginx-controllerrevision.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	Default(o)
	return o.(*ControllerRevision)
}

func TestControllerRevisionRegistered(t *testing.T) {
	info, ok := ByResource("controllerrevisions")
	if !ok || info.Kind != KindControllerRevision || info.APIVersion() != "apps/v1" || !info.Namespaced || info.HasStatus {
		t.Fatalf("ByResource(controllerrevisions) = %+v, %v", info, ok)
	}
	for _, name := range []string{"controllerrevision", "ControllerRevision", "controllerrevisions.apps"} {
		if got, ok := ByResource(name); !ok || got.Kind != KindControllerRevision {
			t.Errorf("ByResource(%q) = %v, %v", name, got.Kind, ok)
		}
	}
	if got, ok := ByGroupResource("apps", "v1", "controllerrevisions"); !ok || got.Kind != KindControllerRevision {
		t.Errorf("ByGroupResource = %v, %v", got.Kind, ok)
	}
	if k := kindOfObject(&ControllerRevision{}); k != KindControllerRevision {
		t.Errorf("kindOfObject = %q", k)
	}
}

func TestDecodeControllerRevision(t *testing.T) {
	r := validRevision(t)
	if errs := Validate(r); errs != nil {
		t.Fatalf("Validate: %v", errs)
	}
	c := r.Data.Spec.Containers[0]
	switch {
	case r.Namespace != "default" || r.Revision != 2 || r.Labels["pod-template-hash"] != "5c689d88bb":
		t.Errorf("meta = %+v, revision %d", r.ObjectMeta, r.Revision)
	case r.Annotations[ChangeCauseAnnotation] != "image updated to 1.14.2":
		t.Errorf("annotations = %v", r.Annotations)
	case c.Image != "nginx:1.14.2" || c.Ports[0].Protocol != ProtocolTCP || r.Data.Spec.RestartPolicy != RestartPolicyAlways:
		t.Errorf("data was not decoded and defaulted as a pod template: %+v", r.Data.Spec)
	}

	// The template is the whole of data: its fields are checked like a
	// Deployment's, with their paths under data.
	doc := string(readTestdata(t, "nginx-controllerrevision.yaml"))
	for _, tt := range []struct{ in, want string }{
		{strings.Replace(doc, "revision: 2", "revision: two", 1), `revision: Invalid value: "two": expected integer, got string`},
		{strings.Replace(doc, "  spec:\n", "  spec:\n    volumes: []\n", 1), "data.spec.volumes: not supported"},
		{strings.Replace(doc, "  metadata:\n    labels:\n      app: nginx\n  spec:", "  metadata:\n    labels:\n      app: nginx\n  replicas: 2\n  spec:", 1), "data.replicas: unknown field"},
	} {
		_, err := DecodeObject([]byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("DecodeObject: %v, want %q", err, tt.want)
		}
	}
}

func TestValidateControllerRevision(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *ControllerRevision)
		want   []string
	}{
		{"valid", func(r *ControllerRevision) {}, nil},
		{"revision 0", func(r *ControllerRevision) { r.Revision = 0 },
			[]string{"revision: Invalid value: 0: must be greater than or equal to 1"}},
		{"negative revision", func(r *ControllerRevision) { r.Revision = -3 },
			[]string{"revision: Invalid value: -3: must be greater than or equal to 1"}},
		{"bad name", func(r *ControllerRevision) { r.Name = "Web_1" },
			[]string{`metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')`}},
		{"no namespace", func(r *ControllerRevision) { r.Namespace = "" },
			[]string{"metadata.namespace: Required value"}},
		{"template without containers", func(r *ControllerRevision) { r.Data.Spec.Containers = nil },
			[]string{"data.spec.containers: Required value"}},
		{"template label", func(r *ControllerRevision) { r.Data.Labels["app"] = "-x" },
			[]string{`data.metadata.labels: Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRevision(t)
			tt.mutate(r)
			checkErrors(t, Validate(r), tt.want)
		})
	}
}

func TestValidateControllerRevisionUpdate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *ControllerRevision)
		want   []string
	}{
		{"renumbered", func(r *ControllerRevision) { r.Revision = 7 }, nil},
		{"metadata", func(r *ControllerRevision) {
			r.Annotations[ChangeCauseAnnotation] = "rolled back"
			r.Labels["extra"] = "yes"
		}, nil},
		{"template changed", func(r *ControllerRevision) { r.Data.Spec.Containers[0].Image = "nginx:1.16" },
			[]string{`data: Invalid value: "object": field is immutable`}},
		{"template label changed", func(r *ControllerRevision) { r.Data.Labels["tier"] = "web" },
			[]string{`data: Invalid value: "object": field is immutable`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, n := validRevision(t), validRevision(t)
			tt.mutate(n)
			checkErrors(t, ValidateUpdate(n, old), tt.want)
		})
	}
}

// An API request body of a ControllerRevision takes DecodeAs's fast path
// and comes out as the strict decoder makes it.
func TestDecodeAsControllerRevision(t *testing.T) {
	info, _ := ByKind(KindControllerRevision)
	body := []byte(`{"metadata":{"name":"web-5c689d88","namespace":"default","labels":{"app":"web"}},
		"data":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx:1","ports":[{"containerPort":80}]}]}},
		"revision":4}`)
	fast := info.New()
	if err := strictJSON.Unmarshal(body, fast); err != nil {
		t.Fatalf("the fast path refuses a well-formed ControllerRevision: %v", err)
	}
	o, err := DecodeAs(body, info)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := o.(*ControllerRevision)
	if !ok || r.Kind != "ControllerRevision" || r.APIVersion != "apps/v1" || r.Revision != 4 || r.Data.Spec.Containers[0].Ports[0].ContainerPort != 80 {
		t.Fatalf("DecodeAs = %#v", o)
	}
	checkFastMatchesStrict(t, body)

	// Refused by the fast path, reported by the strict walker with paths.
	_, err = DecodeAs([]byte(`{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"x"},"data":{"spec":{"containers":[{"name":"c","image":"i","volumeMounts":[]}]}},"revision":1}`), info)
	if err == nil || err.Error() != "data.spec.containers[0].volumeMounts: not supported" {
		t.Errorf("DecodeAs with an unsupported field: %v", err)
	}
}
