package api

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKubernetesDocsExamples decodes, defaults and validates the
// nginx-deployment and my-service examples of the Kubernetes docs.
func TestKubernetesDocsExamples(t *testing.T) {
	data := string(readTestdata(t, "nginx-deployment.yaml")) + "---\n" + string(readTestdata(t, "my-service.yaml"))
	objs, err := Decode([]byte(data))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(objs) != 2 {
		t.Fatalf("Decode returned %d objects, want 2", len(objs))
	}
	for _, o := range objs {
		Default(o)
		if errs := Validate(o); errs != nil {
			t.Errorf("Validate(%s): %v", KindOf(o), errs)
		}
	}
	d, ok := objs[0].(*Deployment)
	if !ok {
		t.Fatalf("objs[0] is %T, want *Deployment", objs[0])
	}
	if d.Name != "nginx-deployment" || d.Namespace != "default" || *d.Spec.Replicas != 3 {
		t.Errorf("deployment = %s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "nginx:1.14.2" || c.Ports[0].ContainerPort != 80 || c.Ports[0].Protocol != ProtocolTCP || c.ImagePullPolicy != PullIfNotPresent {
		t.Errorf("container = %+v", c)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != RollingUpdateDeploymentStrategyType || ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "25%" {
		t.Errorf("strategy = %+v", d.Spec.Strategy)
	}
	s, ok := objs[1].(*Service)
	if !ok {
		t.Fatalf("objs[1] is %T, want *Service", objs[1])
	}
	p := s.Spec.Ports[0]
	if s.Spec.Type != ServiceTypeClusterIP || s.Spec.Selector["app.kubernetes.io/name"] != "MyApp" ||
		p.Protocol != ProtocolTCP || p.Port != 80 || p.TargetPort != FromInt32(9376) {
		t.Errorf("service spec = %+v", s.Spec)
	}
}

func TestDecodeStreams(t *testing.T) {
	dep := string(readTestdata(t, "nginx-deployment.yaml"))
	svc := string(readTestdata(t, "my-service.yaml"))
	tests := []struct {
		name  string
		in    string
		kinds []Kind
	}{
		{"empty", "", nil},
		{"only separators and comments", "---\n# nothing\n---\n\n---\n", nil},
		{"leading separator", "---\n" + dep, []Kind{KindDeployment}},
		{"empty documents skipped", dep + "---\n---\n# comment\n---\n" + svc, []Kind{KindDeployment, KindService}},
		{"separator with trailing space", svc + "---  \n" + dep, []Kind{KindService, KindDeployment}},
		{"json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"}}`, []Kind{KindNamespace}},
		{"json stream", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}`, []Kind{KindNamespace, KindNamespace}},
		{"json list", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}]}`, []Kind{KindNamespace, KindNode}},
		{"yaml list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n", []Kind{KindNamespace}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var kinds []Kind
			for _, o := range objs {
				kinds = append(kinds, KindOf(o))
			}
			if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(tt.kinds), ",") {
				t.Errorf("kinds = %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func kindStrings(ks []Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestDecodeErrors(t *testing.T) {
	dep := string(readTestdata(t, "nginx-deployment.yaml"))
	tests := []struct {
		name string
		in   string
		// want is the exact error text; contains lists substrings instead.
		want     string
		contains []string
	}{
		{
			name: "volumeMounts not supported",
			in:   strings.Replace(dep, "        ports:\n", "        volumeMounts:\n        - name: data\n          mountPath: /data\n        ports:\n", 1),
			want: "spec.template.spec.containers[0].volumeMounts: not supported",
		},
		{
			name: "unknown field",
			in:   strings.Replace(dep, "  replicas: 3\n", "  replicas: 3\n  replica: 3\n", 1),
			want: "spec.replica: unknown field",
		},
		{
			name: "field names are case-sensitive",
			in:   strings.Replace(dep, "  replicas: 3\n", "  Replicas: 3\n", 1),
			want: "spec.Replicas: unknown field",
		},
		{
			name: "several errors reported at once",
			in: strings.NewReplacer(
				"  replicas: 3\n", "  replicas: three\n  paused: maybe\n",
				"        image: nginx:1.14.2\n", "        image: nginx:1.14.2\n        securityContext: {seccompProfile: {type: RuntimeDefault}}\n        resources:\n          limits:\n            cpu: 2 cores\n",
				"      containers:\n", "      volumes: []\n      containers:\n",
				"    app: nginx\nspec:", "    app: nginx\n  color: blue\nspec:",
			).Replace(dep),
			want: `6 errors: metadata.color: unknown field; ` +
				`spec.paused: Invalid value: "maybe": expected boolean, got string; ` +
				`spec.replicas: Invalid value: "three": expected integer, got string; ` +
				`spec.template.spec.containers[0].resources.limits[cpu]: Invalid value: "2 cores": parse quantity "2 cores": ` + ErrQuantity.Error() + `; ` +
				`spec.template.spec.containers[0].securityContext.seccompProfile: not supported; ` +
				`spec.template.spec.volumes: not supported`,
		},
		{
			name: "int32 overflow",
			in:   strings.Replace(dep, "  replicas: 3\n", "  replicas: 3000000000\n", 1),
			want: "spec.replicas: Invalid value: 3000000000: expected a 32-bit integer",
		},
		{
			name: "float for integer",
			in:   strings.Replace(dep, "  replicas: 3\n", "  replicas: 1.5\n", 1),
			want: "spec.replicas: Invalid value: 1.5: expected a 32-bit integer",
		},
		{
			name: "object for string",
			in:   strings.Replace(dep, "name: nginx-deployment", "name: {a: b}", 1),
			want: `metadata.name: Invalid value: {"a":"b"}: expected string, got object`,
		},
		{
			name: "number for string label",
			in:   strings.Replace(dep, "    app: nginx\nspec:", "    version: 2\nspec:", 1),
			want: `metadata.labels[version]: Invalid value: 2: expected string, got number`,
		},
		{
			name: "bad int-or-string",
			in:   strings.Replace(string(readTestdata(t, "my-service.yaml")), "targetPort: 9376", "targetPort: [1]", 1),
			want: `spec.ports[0].targetPort: Invalid value: [1]: expected an integer or string, got array`,
		},
		{
			name: "bad time",
			in:   "apiVersion: v1\nkind: Event\nmetadata: {name: e}\ninvolvedObject: {kind: Pod}\nfirstTimestamp: yesterday\n",
			want: `firstTimestamp: Invalid value: "yesterday": invalid time "yesterday": want RFC 3339`,
		},
		{
			name: "unknown kind",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
			want: `kind: Unsupported value: "ConfigMap": no kind "ConfigMap" is registered`,
		},
		{
			name: "wrong apiVersion",
			in:   strings.Replace(dep, "apiVersion: apps/v1", "apiVersion: v1", 1),
			want: `apiVersion: Invalid value: "v1": kind Deployment is served as apiVersion "apps/v1"`,
		},
		{
			name: "missing apiVersion and kind",
			in:   "metadata:\n  name: x\n",
			want: "2 errors: apiVersion: Required value; kind: Required value",
		},
		{
			name:     "malformed yaml",
			in:       "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [x\n",
			contains: []string{"invalid YAML", "line"},
		},
		{
			name:     "malformed yaml indentation",
			in:       "apiVersion: v1\nkind: Namespace\n metadata: x\n",
			contains: []string{"invalid YAML", "line 3"},
		},
		{
			name:     "malformed json",
			in:       "{\"apiVersion\": \"v1\",\n \"kind\": \"Namespace\",\n \"metadata\": {\"name\": \"x\",}}",
			contains: []string{"invalid JSON at line 3"},
		},
		{
			name: "not an object",
			in:   "- a\n- b\n",
			want: "a manifest must be an object, not array",
		},
		{
			name: "list with a bad item",
			in:   `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","nme":"b"}}]}`,
			want: "items[0].metadata.nme: unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded with %d objects, want error", len(objs))
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tt.want)
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
		})
	}
}

func TestDecodeFieldErrorTypes(t *testing.T) {
	dep := string(readTestdata(t, "nginx-deployment.yaml"))
	in := strings.Replace(dep, "        ports:\n", "        volumeMounts: []\n        colour: red\n        ports:\n", 1)
	_, err := DecodeObject([]byte(in))
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not FieldErrors", err, err)
	}
	want := FieldErrors{
		{Field: "spec.template.spec.containers[0].colour", Type: FieldUnknown, Detail: "unknown field"},
		{Field: "spec.template.spec.containers[0].volumeMounts", Type: FieldNotSupported, Detail: "not supported"},
	}
	if len(fe) != len(want) {
		t.Fatalf("errors = %v, want %v", fe, want)
	}
	for i := range want {
		if fe[i] != want[i] {
			t.Errorf("error %d = %+v, want %+v", i, fe[i], want[i])
		}
	}
}

func TestDecodeMultiDocumentError(t *testing.T) {
	dep := string(readTestdata(t, "nginx-deployment.yaml"))
	bad := strings.Replace(dep, "  replicas: 3\n", "  replicas: -1\n  foo: 1\n", 1)
	_, err := Decode([]byte(string(readTestdata(t, "my-service.yaml")) + "---\n" + bad))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	if de.Doc != 1 || de.Kind != "Deployment" || de.Name != "nginx-deployment" || de.Line != 13 {
		t.Errorf("DecodeError = doc %d line %d %s/%s", de.Doc, de.Line, de.Kind, de.Name)
	}
	if want := "document 1 (line 13) Deployment/nginx-deployment: spec.foo: unknown field"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	var fe FieldErrors
	if !errors.As(err, &fe) || len(fe) != 1 {
		t.Errorf("errors.As FieldErrors = %v", fe)
	}

	_, err = Decode([]byte(dep + "---\nkind: [\n"))
	if !errors.As(err, &de) || de.Doc != 1 || !strings.Contains(err.Error(), "invalid YAML") {
		t.Errorf("syntax error in document 1: %v", err)
	}
}

func TestDecodeObjectCount(t *testing.T) {
	if _, err := DecodeObject([]byte("# nothing\n")); !errors.Is(err, ErrNoObject) {
		t.Errorf("DecodeObject(empty) = %v, want ErrNoObject", err)
	}
	two := string(readTestdata(t, "my-service.yaml")) + "---\n" + string(readTestdata(t, "my-service.yaml"))
	if _, err := DecodeObject([]byte(two)); err == nil {
		t.Error("DecodeObject of two documents succeeded")
	}
}

func TestDecodeFullPod(t *testing.T) {
	in := `
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: prod
  labels: {app: web}
  annotations: {note: "x"}
spec:
  nodeName: node-1
  nodeSelector: {disk: ssd}
  hostNetwork: false
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  tolerations:
  - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
  - {operator: Exists}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: zone, operator: In, values: [a, b]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference:
          matchExpressions: [{key: gpu, operator: Exists}]
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {app: web}}
        topologyKey: kubernetes.io/hostname
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          labelSelector:
            matchExpressions: [{key: app, operator: In, values: [db]}]
          topologyKey: zone
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: web}}
  containers:
  - name: web
    image: registry.local:5000/web
    command: [/bin/web]
    args: [--port, "8080"]
    workingDir: /srv
    env: [{name: MODE, value: prod}]
    ports: [{name: http, containerPort: 8080, protocol: TCP, hostPort: 80}]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 1, memory: 128Mi}
    livenessProbe:
      httpGet: {path: /healthz, port: http, scheme: HTTP, httpHeaders: [{name: X, value: "y"}]}
      initialDelaySeconds: 5
    readinessProbe:
      tcpSocket: {port: 8080}
    startupProbe:
      exec: {command: [cat, /ready]}
      failureThreshold: 30
status:
  phase: Running
  podIP: 10.0.0.5
  podIPs: [{ip: 10.0.0.5}]
  hostIP: 192.168.1.2
  startTime: "2024-01-02T03:04:05Z"
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2024-01-02T03:04:05Z"}
  containerStatuses:
  - name: web
    ready: true
    restartCount: 2
    image: registry.local:5000/web
    containerID: containerd://abc
    state: {running: {startedAt: "2024-01-02T03:04:06Z"}}
    lastState: {terminated: {exitCode: 1, reason: Error}}
`
	o, err := DecodeObject([]byte(in))
	if err != nil {
		t.Fatalf("DecodeObject: %v", err)
	}
	Default(o)
	if errs := Validate(o); errs != nil {
		t.Fatalf("Validate: %v", errs)
	}
	p := o.(*Pod)
	c := p.Spec.Containers[0]
	if c.ImagePullPolicy != PullAlways {
		t.Errorf("imagePullPolicy = %s, want Always (untagged image)", c.ImagePullPolicy)
	}
	if c.Resources.Requests.Cpu().MilliValue() != 100 || c.Resources.Limits.Memory().Value() != 128<<20 {
		t.Errorf("resources = %+v", c.Resources)
	}
	if c.LivenessProbe.HTTPGet.Port != FromString("http") || c.LivenessProbe.PeriodSeconds != 10 || c.StartupProbe.FailureThreshold != 30 {
		t.Errorf("probes = %+v %+v", c.LivenessProbe, c.StartupProbe)
	}
	if p.Status.ContainerStatuses[0].State.Running == nil || p.Status.StartTime.Year() != 2024 {
		t.Errorf("status = %+v", p.Status)
	}
}

func TestDecodeSecurityContext(t *testing.T) {
	in := `
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  hostNetwork: true
  hostPID: true
  hostIPC: true
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    fsGroup: 2000
    supplementalGroups: [4000, 5000]
  containers:
  - name: agent
    image: agent:1.0
    securityContext:
      privileged: false
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
      runAsUser: 1001
      runAsGroup: 3001
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
`
	o, err := DecodeObject([]byte(in))
	if err != nil {
		t.Fatalf("DecodeObject: %v", err)
	}
	Default(o)
	if errs := Validate(o); errs != nil {
		t.Fatalf("Validate: %v", errs)
	}
	s := o.(*Pod).Spec
	if !s.HostNetwork || !s.HostPID || !s.HostIPC {
		t.Errorf("host namespaces = %v %v %v, want all true", s.HostNetwork, s.HostPID, s.HostIPC)
	}
	psc := s.SecurityContext
	if psc == nil || *psc.RunAsUser != 1000 || *psc.RunAsGroup != 3000 || !*psc.RunAsNonRoot || *psc.FSGroup != 2000 ||
		len(psc.SupplementalGroups) != 2 || psc.SupplementalGroups[1] != 5000 {
		t.Errorf("pod securityContext = %+v", psc)
	}
	sc := s.Containers[0].SecurityContext
	if sc == nil || *sc.Privileged || *sc.RunAsUser != 1001 || *sc.RunAsGroup != 3001 || !*sc.RunAsNonRoot ||
		!*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
		t.Fatalf("container securityContext = %+v", sc)
	}
	if c := sc.Capabilities; c == nil || len(c.Add) != 1 || c.Add[0] != "NET_ADMIN" || len(c.Drop) != 1 || c.Drop[0] != CapabilityAll {
		t.Errorf("capabilities = %+v", c)
	}

	// The API server's fast path decodes the same object.
	info, _ := ByKind(KindPod)
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := DecodeAs(data, info)
	if err != nil {
		t.Fatalf("DecodeAs: %v", err)
	}
	if !SpecEqual(fast, o) {
		t.Errorf("DecodeAs spec = %+v, want %+v", fast.(*Pod).Spec, s)
	}
}

// Kubernetes security fields skiff does not implement are "not supported",
// not "unknown": the user learns the field is real but unavailable here.
func TestDecodeSecurityContextUnsupported(t *testing.T) {
	in := `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  securityContext: {sysctls: [{name: net.core.somaxconn, value: "1024"}]}
  containers:
  - name: c
    image: busybox
    securityContext: {procMount: Unmasked, seccompProfile: {type: Unconfined}}
`
	_, err := DecodeObject([]byte(in))
	want := "3 errors: spec.containers[0].securityContext.procMount: not supported; " +
		"spec.containers[0].securityContext.seccompProfile: not supported; " +
		"spec.securityContext.sysctls: not supported"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("DecodeObject error = %v, want suffix %q", err, want)
	}
}
