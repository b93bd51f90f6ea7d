package api

import (
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "frontend", "env": "prod", "app.kubernetes.io/name": "MyApp"}
	tests := []struct {
		in    string
		str   string
		match bool
	}{
		{"", "", true},
		{"app=web", "app=web", true},
		{"app==web", "app=web", true},
		{"app = web", "app=web", true},
		{"app!=web", "app!=web", false},
		{"app!=db", "app!=db", true},
		{"missing!=x", "missing!=x", true},
		{"app=db", "app=db", false},
		{"app in (web,db)", "app in (db,web)", true},
		{"app in ( db , api )", "app in (api,db)", false},
		{"app notin (db)", "app notin (db)", true},
		{"app notin (web)", "app notin (web)", false},
		{"missing notin (web)", "missing notin (web)", true},
		{"app", "app", true},
		{"missing", "missing", false},
		{"!missing", "!missing", true},
		{"!app", "!app", false},
		{"tier=frontend,app in (web),!canary", "app in (web),!canary,tier=frontend", true},
		{"app.kubernetes.io/name=MyApp", "app.kubernetes.io/name=MyApp", true},
		{"env=", "env=", false},
		{"in=x", "in=x", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector: %v", err)
			}
			if got := s.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := s.Matches(labels); got != tt.match {
				t.Errorf("Matches = %v, want %v", got, tt.match)
			}
			if s.Empty() != (tt.in == "") {
				t.Errorf("Empty() = %v", s.Empty())
			}
			// String() parses back to an equivalent selector.
			back, err := ParseSelector(s.String())
			if err != nil || back.String() != s.String() {
				t.Errorf("re-parse of %q: %v, %v", s.String(), back, err)
			}
		})
	}
}

func TestParseSelectorErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"app=web,", `expected a label key`},
		{",app", `expected a label key`},
		{"app in web", `expected '('`},
		{"app in (web", `expected ',' or ')'`},
		{"app=web=x", `expected ',' or end of selector`},
		{"app web", `expected one of '=', '==', '!=', 'in', 'notin'`},
		{"-app=x", `invalid label key "-app"`},
		{"app=-web", `invalid label value "-web"`},
		{"a/b/c=x", `invalid label key "a/b/c"`},
		{"app=" + strings.Repeat("x", 64), `must be no more than 63 characters`},
		{"app~=x", `found "~"`},
		{"!", `expected a label key`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseSelector(tt.in)
			if err == nil {
				t.Fatal("ParseSelector succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestLabelSelectorAsSelector(t *testing.T) {
	ls := &LabelSelector{
		MatchLabels: map[string]string{"app": "web"},
		MatchExpressions: []LabelSelectorRequirement{
			{Key: "tier", Operator: LabelSelectorOpIn, Values: []string{"fe", "be"}},
			{Key: "canary", Operator: LabelSelectorOpDoesNotExist},
		},
	}
	s, err := ls.AsSelector()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "app=web,!canary,tier in (be,fe)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"app": "web", "tier": "fe"}, true},
		{map[string]string{"app": "web", "tier": "db"}, false},
		{map[string]string{"app": "web", "tier": "fe", "canary": "1"}, false},
		{nil, false},
	} {
		if got := s.Matches(tt.labels); got != tt.want || ls.MatchesLabels(tt.labels) != tt.want {
			t.Errorf("Matches(%v) = %v, MatchesLabels = %v, want %v", tt.labels, got, ls.MatchesLabels(tt.labels), tt.want)
		}
	}
	var nilSel *LabelSelector
	if s, _ := nilSel.AsSelector(); s.Matches(nil) || s.Empty() {
		t.Error("nil LabelSelector must match nothing")
	}
	if s, _ := (&LabelSelector{}).AsSelector(); !s.Matches(map[string]string{"a": "b"}) || !s.Empty() {
		t.Error("empty LabelSelector must match everything")
	}
	if _, err := (&LabelSelector{MatchExpressions: []LabelSelectorRequirement{{Key: "a", Operator: "Has"}}}).AsSelector(); err == nil {
		t.Error("unknown operator: want error")
	}
	if !Everything().Matches(nil) || Nothing().Matches(nil) {
		t.Error("Everything/Nothing")
	}
	if !SelectorFromSet(map[string]string{"app": "web"}).Matches(map[string]string{"app": "web", "x": "y"}) {
		t.Error("SelectorFromSet")
	}
}

func TestParseFieldSelector(t *testing.T) {
	pod := &Pod{ObjectMeta: ObjectMeta{Name: "web-1", Namespace: "prod"},
		Spec: PodSpec{NodeName: "node-1"}, Status: PodStatus{Phase: PodRunning}}
	node := &Node{ObjectMeta: ObjectMeta{Name: "node-1"}, Spec: NodeSpec{Unschedulable: true}}
	ev := &Event{ObjectMeta: ObjectMeta{Name: "e", Namespace: "prod"}, Type: EventTypeWarning,
		InvolvedObject: ObjectReference{Kind: "Pod", Name: "web-1", Namespace: "prod"}}
	tests := []struct {
		in    string
		obj   Object
		match bool
	}{
		{"", pod, true},
		{"metadata.name=web-1", pod, true},
		{"metadata.name==web-2", pod, false},
		{"metadata.namespace!=prod", pod, false},
		{"spec.nodeName=node-1,status.phase=Running", pod, true},
		{"spec.nodeName=", pod, false},
		{"status.phase!=Running", pod, false},
		{"spec.unschedulable=true", node, true},
		{"spec.unschedulable=false", node, false},
		{"type=Warning,involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.namespace=prod", ev, true},
		{"involvedObject.name=web-2", ev, false},
		{"spec.nodeName=", node, true}, // nodes have no spec.nodeName: it reads as ""
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			fs, err := ParseFieldSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseFieldSelector: %v", err)
			}
			if got := fs.Matches(tt.obj); got != tt.match {
				t.Errorf("Matches = %v, want %v", got, tt.match)
			}
		})
	}
	for _, in := range []string{"spec.foo=bar", "metadata.name", "labels.app=x"} {
		if _, err := ParseFieldSelector(in); err == nil {
			t.Errorf("ParseFieldSelector(%q) succeeded, want error", in)
		}
	}
	_, err := ParseFieldSelector("spec.foo=bar")
	if err == nil || !strings.Contains(err.Error(), `"spec.foo"`) {
		t.Errorf("error %v does not name the field", err)
	}
	fs, _ := ParseFieldSelector("spec.nodeName=node-1")
	if v, ok := ExactMatch(fs, FieldPodNodeName); !ok || v != "node-1" {
		t.Errorf("ExactMatch = %q, %v", v, ok)
	}
}

func TestFieldsOf(t *testing.T) {
	pod := &Pod{ObjectMeta: ObjectMeta{Name: "p", Namespace: "ns"}, Spec: PodSpec{NodeName: "n", RestartPolicy: RestartPolicyAlways}, Status: PodStatus{Phase: PodPending}}
	got := FieldsOf(pod)
	want := map[string]string{"metadata.name": "p", "metadata.namespace": "ns", "spec.nodeName": "n", "status.phase": "Pending", "spec.restartPolicy": "Always", "status.podIP": ""}
	if len(got) != len(want) {
		t.Fatalf("FieldsOf = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("FieldsOf[%s] = %q, want %q", k, got[k], v)
		}
	}
	if got := FieldsOf(&Node{Spec: NodeSpec{Unschedulable: true}}); got["spec.unschedulable"] != "true" {
		t.Errorf("FieldsOf(node) = %v", got)
	}
}
