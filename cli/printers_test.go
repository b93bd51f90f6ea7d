package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// typed decodes JSON into the typed object of kind, rejecting fields the
// api types do not have (so a printer cannot read a path that does not
// exist), and returns it.
func typed(t *testing.T, kind api.Kind, js string) api.Object {
	t.Helper()
	info, ok := api.ByKind(kind)
	if !ok {
		t.Fatalf("unknown kind %s", kind)
	}
	o := info.New()
	d := json.NewDecoder(strings.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(o); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return o
}

// typedFields is typed's object in its JSON form, as printers see it.
func typedFields(t *testing.T, kind api.Kind, js string) fields {
	t.Helper()
	return mustFields(typed(t, kind, js))
}

const createdAt = `"creationTimestamp": "2026-03-01T11:55:00Z"`

func TestTableRows(t *testing.T) {
	tests := []struct {
		name   string
		kind   api.Kind
		obj    string
		p      tablePrinter
		header string
		row    string
	}{
		{
			name: "pending pod",
			kind: api.KindPod,
			obj: `{"metadata":{"name":"web-1","namespace":"default",` + createdAt + `},
				"spec":{"containers":[{"name":"web","image":"x"}]}}`,
			header: "NAME READY STATUS RESTARTS AGE",
			row:    "web-1 0/1 Pending 0 5m",
		},
		{
			name: "running pod, wide",
			kind: api.KindPod,
			obj: `{"metadata":{"name":"web-1","namespace":"default",` + createdAt + `},
				"spec":{"nodeName":"node-1","containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]},
				"status":{"phase":"Running","podIP":"10.244.1.5","containerStatuses":[
					{"name":"a","ready":true,"restartCount":2,"image":"x","state":{"running":{}}},
					{"name":"b","ready":false,"restartCount":1,"image":"y","state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}`,
			p:      tablePrinter{wide: true},
			header: "NAME READY STATUS RESTARTS AGE IP NODE",
			row:    "web-1 1/2 CrashLoopBackOff 3 5m 10.244.1.5 node-1",
		},
		{
			name: "terminating pod, all namespaces",
			kind: api.KindPod,
			obj: `{"metadata":{"name":"web-1","namespace":"prod",` + createdAt + `,"deletionTimestamp":"2026-03-01T11:59:00Z"},
				"spec":{"containers":[{"name":"a","image":"x"}]},
				"status":{"phase":"Running","containerStatuses":[{"name":"a","ready":true,"restartCount":0,"image":"x","state":{"running":{}}}]}}`,
			p:      tablePrinter{withNamespace: true},
			header: "NAMESPACE NAME READY STATUS RESTARTS AGE",
			row:    "prod web-1 1/1 Terminating 0 5m",
		},
		{
			name: "deployment",
			kind: api.KindDeployment,
			obj: `{"metadata":{"name":"web","namespace":"default",` + createdAt + `},
				"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
					"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"echo:1"}]}}},
				"status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}}`,
			header: "NAME READY UP-TO-DATE AVAILABLE AGE",
			row:    "web 2/3 3 2 5m",
		},
		{
			name: "deployment, wide, qualified, replicas defaulted",
			kind: api.KindDeployment,
			obj: `{"metadata":{"name":"web","namespace":"default",` + createdAt + `},
				"spec":{"selector":{"matchLabels":{"app":"web"}},
					"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"echo:1"},{"name":"side","image":"s:2"}]}}}}`,
			p:      tablePrinter{wide: true, qualify: true},
			header: "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
			row:    "deployment.apps/web 0/1 0 0 5m web,side echo:1,s:2 app=web",
		},
		{
			name: "cluster IP service",
			kind: api.KindService,
			obj: `{"metadata":{"name":"web","namespace":"default",` + createdAt + `},
				"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10","selector":{"app":"web"},
					"ports":[{"port":80,"targetPort":8080},{"port":53,"protocol":"UDP"}]}}`,
			header: "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
			row:    "web ClusterIP 10.96.0.10 <none> 80/TCP,53/UDP 5m",
		},
		{
			name: "load balancer service without an address yet, wide",
			kind: api.KindService,
			obj: `{"metadata":{"name":"lb","namespace":"default",` + createdAt + `},
				"spec":{"type":"LoadBalancer","clusterIP":"10.96.0.11","selector":{"app":"web"},
					"ports":[{"port":80,"nodePort":30080,"protocol":"TCP"}]}}`,
			p:      tablePrinter{wide: true},
			header: "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
			row:    "lb LoadBalancer 10.96.0.11 <pending> 80:30080/TCP 5m app=web",
		},
		{
			name: "ready node",
			kind: api.KindNode,
			obj: `{"metadata":{"name":"node-1",` + createdAt + `,"labels":{"node-role.kubernetes.io/worker":""}},
				"spec":{"unschedulable":true},
				"status":{"conditions":[{"type":"Ready","status":"True"}],
					"addresses":[{"type":"InternalIP","address":"10.0.0.2"}],
					"nodeInfo":{"kubeletVersion":"v0.1.0","osImage":"Debian 12","kernelVersion":"6.18","containerRuntimeVersion":"containerd://1.6.20"}}}`,
			p:      tablePrinter{wide: true, withNamespace: true},
			header: "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME",
			row:    "node-1 Ready,SchedulingDisabled worker 5m v0.1.0 10.0.0.2 <none> Debian 12 6.18 containerd://1.6.20",
		},
		{
			name:   "not ready node",
			kind:   api.KindNode,
			obj:    `{"metadata":{"name":"node-2",` + createdAt + `},"status":{"conditions":[{"type":"Ready","status":"Unknown"}]}}`,
			header: "NAME STATUS ROLES AGE VERSION",
			row:    "node-2 NotReady <none> 5m <unknown>",
		},
		{
			name:   "namespace",
			kind:   api.KindNamespace,
			obj:    `{"metadata":{"name":"prod",` + createdAt + `},"status":{"phase":"Terminating"}}`,
			header: "NAME STATUS AGE",
			row:    "prod Terminating 5m",
		},
		{
			name: "endpoints",
			kind: api.KindEndpoints,
			obj: `{"metadata":{"name":"web","namespace":"default",` + createdAt + `},
				"subsets":[{"addresses":[{"ip":"10.244.0.1"},{"ip":"10.244.0.2"},{"ip":"10.244.0.3"},{"ip":"10.244.0.4"}],
					"notReadyAddresses":[{"ip":"10.244.0.9"}],"ports":[{"port":8080}]}]}`,
			header: "NAME ENDPOINTS AGE",
			row:    "web 10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 1 more... 5m",
		},
		{
			name:   "empty endpoints",
			kind:   api.KindEndpoints,
			obj:    `{"metadata":{"name":"web","namespace":"default",` + createdAt + `}}`,
			header: "NAME ENDPOINTS AGE",
			row:    "web <none> 5m",
		},
		{
			name: "event",
			kind: api.KindEvent,
			obj: `{"metadata":{"name":"web.1","namespace":"default",` + createdAt + `},
				"involvedObject":{"kind":"Deployment","name":"web","namespace":"default"},
				"type":"Normal","reason":"ScalingReplicaSet","message":"Scaled up to 3",
				"firstTimestamp":"2026-03-01T11:50:00Z","lastTimestamp":"2026-03-01T11:58:00Z","count":4}`,
			header: "LAST SEEN TYPE REASON OBJECT MESSAGE",
			row:    "2m (x4 over 10m) Normal ScalingReplicaSet deployment/web Scaled up to 3",
		},
		{
			name: "daemonset",
			kind: api.KindDaemonSet,
			obj: `{"metadata":{"name":"agent","namespace":"kube-system",` + createdAt + `},
				"spec":{"selector":{"matchLabels":{"app":"agent"}},
					"template":{"metadata":{"labels":{"app":"agent"}},"spec":{"nodeSelector":{"os":"linux"},"containers":[{"name":"a","image":"x"}]}}},
				"status":{"desiredNumberScheduled":3,"currentNumberScheduled":3,"numberReady":2,"updatedNumberScheduled":3,"numberAvailable":2,"numberMisscheduled":0}}`,
			header: "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
			row:    "agent 3 3 2 3 2 os=linux 5m",
		},
		{
			name: "controllerrevision, all namespaces",
			kind: api.KindControllerRevision,
			obj: `{"metadata":{"name":"web-5c689d88","namespace":"default",` + createdAt + `,
				"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"u","controller":true}]},
				"data":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"echo:1"}]}},"revision":3}`,
			p:      tablePrinter{withNamespace: true},
			header: "NAMESPACE NAME CONTROLLER REVISION AGE",
			row:    "default web-5c689d88 deployment.apps/web 3 5m",
		},
		{
			name:   "controllerrevision without a controller",
			kind:   api.KindControllerRevision,
			obj:    `{"metadata":{"name":"orphan","namespace":"default",` + createdAt + `},"revision":1}`,
			header: "NAME CONTROLLER REVISION AGE",
			row:    "orphan <none> 1 5m",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, _ := api.ByKind(tt.kind)
			p := tt.p
			p.now = func() time.Time { return testNow }
			o := typedFields(t, tt.kind, tt.obj)
			if got := strings.Join(p.header(info), " "); got != tt.header {
				t.Errorf("header:\n got %q\nwant %q", got, tt.header)
			}
			if got := strings.Join(p.row(info, o), " "); got != tt.row {
				t.Errorf("row:\n got %q\nwant %q", got, tt.row)
			}
			if h, r := len(p.header(info)), len(p.row(info, o)); h != r {
				t.Errorf("header has %d columns, row %d", h, r)
			}
		})
	}
}

func TestTableAlignsAndKeepsWidths(t *testing.T) {
	var b bytes.Buffer
	tw := &table{w: &b}
	tw.add([]string{"NAME", "READY", "AGE"}, []string{"web", "0/3", "5m"})
	tw.add([]string{"a-much-longer-name", "1/3", "6m"})
	want := "NAME   READY   AGE\n" +
		"web    0/3     5m\n" +
		"a-much-longer-name   1/3     6m\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-5 * time.Second:               "<invalid>",
		-time.Second:                   "0s",
		0:                              "0s",
		119 * time.Second:              "119s",
		2 * time.Minute:                "2m",
		3*time.Minute + 20*time.Second: "3m20s",
		45 * time.Minute:               "45m",
		5*time.Hour + 30*time.Minute:   "5h30m",
		20 * time.Hour:                 "20h",
		3*24*time.Hour + 4*time.Hour:   "3d4h",
		30 * 24 * time.Hour:            "30d",
		3 * 365 * 24 * time.Hour:       "3y",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestListDocShape(t *testing.T) {
	d := typed(t, api.KindDeployment, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"}}`)
	s := typed(t, api.KindService, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"}}`)
	var b bytes.Buffer
	if err := printJSON(&b, newListDoc([]api.Object{d, s})); err != nil {
		t.Fatal(err)
	}
	var got struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Items      []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.APIVersion != "v1" || got.Kind != "List" || len(got.Items) != 2 ||
		got.Items[0].Kind != "Deployment" || got.Items[1].Kind != "Service" {
		t.Errorf("unexpected list: %s", b.String())
	}
	if rv, ok := got.Metadata["resourceVersion"]; !ok || rv != "" {
		t.Errorf(`metadata should be {"resourceVersion":""}: %s`, b.String())
	}
	if !strings.HasPrefix(b.String(), "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n    \"items\": [") {
		t.Errorf("want kubectl's key order and four-space indent, got:\n%s", b.String())
	}

	b.Reset()
	if err := printJSON(&b, newListDoc(nil)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"items": []`) {
		t.Errorf("an empty list must print items: [], got %s", b.String())
	}
}

func TestQualifiedNames(t *testing.T) {
	for res, want := range map[string]string{
		"deploy": "deployment.apps/web", "svc": "service/web", "ds": "daemonset.apps/web",
		"po": "pod/web", "no": "node/web", "ns": "namespace/web", "ep": "endpoints/web", "ev": "event/web",
	} {
		info, err := resource(res)
		if err != nil {
			t.Fatal(err)
		}
		if got := qualifiedName(info, "web"); got != want {
			t.Errorf("%s: got %q, want %q", res, got, want)
		}
	}
	if _, err := resource("foo"); err == nil || err.Error() != `the server doesn't have a resource type "foo"` {
		t.Errorf("unknown resource: %v", err)
	}
}

func TestParseTargets(t *testing.T) {
	ts, err := parseTargets([]string{"deploy,svc", "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].info.Kind != api.KindDeployment || ts[1].info.Kind != api.KindService ||
		len(ts[1].names) != 1 || ts[1].names[0] != "web" {
		t.Errorf("got %+v", ts)
	}
	ts, err = parseTargets([]string{"deploy/web", "deploy/api", "svc/web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || len(ts[0].names) != 2 || ts[1].names[0] != "web" {
		t.Errorf("got %+v", ts)
	}
	ts, err = parseTargets([]string{"all"})
	if err != nil || len(ts) != 4 || ts[0].info.Kind != api.KindPod {
		t.Errorf("all: %v %+v", err, ts)
	}
	if _, err := parseTargets([]string{"deploy,bogus"}); err == nil {
		t.Error("an unknown kind must fail")
	}
}

func TestDescribe(t *testing.T) {
	info, _ := api.ByKind(api.KindDeployment)
	o := typedFields(t, api.KindDeployment, `{"metadata":{"name":"web","namespace":"default",`+createdAt+`,
		"labels":{"app":"web"},"annotations":{"skiff.io/last-applied":"{}","team":"edge"}},
		"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
			"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"echo:1","ports":[{"containerPort":8080}]}]}}}}`)
	ev := typedFields(t, api.KindEvent, `{"metadata":{"name":"web.1","namespace":"default",`+createdAt+`},
		"involvedObject":{"kind":"Deployment","name":"web"},"type":"Normal","reason":"Created","message":"made it",
		"source":{"component":"deployment-controller"}}`)
	var b bytes.Buffer
	describeObject(&b, info, o, []fields{ev}, nil, testNow)
	out := b.String()
	for _, want := range []string{
		"Name:", "web", "Namespace:", "Labels:", "app=web", "team: edge",
		"Replicas:", "3 desired | 0 updated | 0 total | 0 available | 0 unavailable",
		"StrategyType:", "RollingUpdate", "Pod Template:", "Image:", "echo:1", "8080/TCP",
		"Events:", "deployment-controller", "made it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, LastAppliedAnnotation) {
		t.Errorf("describe must hide %s:\n%s", LastAppliedAnnotation, out)
	}
}

func TestDescribeControllerRevision(t *testing.T) {
	info, _ := api.ByKind(api.KindControllerRevision)
	o := typedFields(t, api.KindControllerRevision, `{"metadata":{"name":"web-5c689d88","namespace":"default",`+createdAt+`,
		"annotations":{"kubernetes.io/change-cause":"image echo:1"},
		"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"u","controller":true}]},
		"data":{"metadata":{"labels":{"app":"web"},"annotations":{"team":"edge"}},"spec":{"containers":[{"name":"web","image":"echo:1"}]}},"revision":3}`)
	var b bytes.Buffer
	describeObject(&b, info, o, nil, nil, testNow)
	out := b.String()
	for _, want := range []string{
		"Name:", "web-5c689d88", "kubernetes.io/change-cause: image echo:1", "Controlled By:", "Deployment/web",
		"Revision:", "3", "Pod Template:", "app=web", "team: edge", "Image:", "echo:1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe output lacks %q:\n%s", want, out)
		}
	}
}
