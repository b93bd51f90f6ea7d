package api

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"unicode/utf8"
)

// The fast path must never accept what the strict walker rejects, and must
// produce the same object when both accept.
func checkFastMatchesStrict(t *testing.T, data []byte) {
	t.Helper()
	for _, info := range Resources() {
		fast, ferr := DecodeAs(data, info)
		o := info.New()
		tm := o.GetTypeMeta()
		tm.Kind, tm.APIVersion = "", ""
		if !utf8.Valid(data) || strictJSON.Unmarshal(data, o) != nil || (tm.Kind != "" && tm.Kind != string(info.Kind)) || (tm.APIVersion != "" && tm.APIVersion != info.APIVersion()) {
			continue // the fast path refused: DecodeAs used DecodeObject itself
		}
		// The fast path accepted: the strict walker must accept the same
		// document (with kind and apiVersion filled in) and agree.
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // keep number literals as written
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("fast path accepted input encoding/json rejects: %v\n%s", err, data)
		}
		m["kind"], m["apiVersion"] = string(info.Kind), info.APIVersion()
		full, _ := json.Marshal(m)
		slow, serr := DecodeObject(full)
		if ferr != nil || serr != nil {
			t.Fatalf("%s: fast err %v, strict err %v\n%s", info.Kind, ferr, serr, data)
		}
		if !reflect.DeepEqual(fast, slow) {
			fb, _ := json.Marshal(fast)
			sb, _ := json.Marshal(slow)
			t.Fatalf("%s: fast and strict decoding differ:\nfast   %s\nstrict %s", info.Kind, fb, sb)
		}
	}
}

func TestDecodeAsMatchesStrict(t *testing.T) {
	for _, f := range []string{"testdata/nginx-deployment.yaml", "testdata/my-service.yaml", "testdata/nginx-controllerrevision.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			Default(o)
			j, _ := json.Marshal(o)
			checkFastMatchesStrict(t, j)
		}
	}
	for _, s := range []string{
		`{"metadata":{"name":"x"},"spec":{"replicas":3}}`,
		`{"metadata":{"Name":"x"}}`,
		`{"Metadata":{"name":"x"}}`,
		`{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","volumeMounts":[]}]}}`,
		`{"metadata":{"name":"x"},"spec":{"replicas":3.5}}`,
		`{"metadata":{"name":"x"},"spec":{"replicas":"3"}}`,
		`{"metadata":{"name":"x","labels":{"a":1}}}`,
		`{"kind":"Pod","apiVersion":"apps/v1","metadata":{"name":"x"}}`,
		`{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":"100m","memory":1e3}}}]}}`,
		`{"metadata":{"name":"x"},"spec":{"ports":[{"port":80,"targetPort":"http"},{"port":81,"targetPort":8081}]}}`,
		`{"metadata":{"name":"x","creationTimestamp":"2024-01-01T00:00:00Z"}}`,
		`{"metadata":{"name":"x"},"status":{"phase":"Running"}} `,
		`{"metadata":{"name":"x"},"metadata":{"name":"y"}}`,
		`{"metadata":null,"spec":null}`,
		`{"metadata":{"name":"x"},"data":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}},"revision":2}`,
		`{"metadata":{"name":"x"},"data":{"spec":{"volumes":[]}},"revision":1}`,
		`{"metadata":{"name":"x"},"data":null,"revision":"1"}`,
		`{"metadata":{"name":"x"},"revision":9223372036854775808}`,
		`{"kind":"ControllerRevision","apiVersion":"v1","revision":1}`,
	} {
		checkFastMatchesStrict(t, []byte(s))
	}
}

func FuzzDecodeAs(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":3,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}],"resources":{"limits":{"cpu":"1"}}}]}}}}`))
	f.Add([]byte(`{"metadata":{"name":"x"},"spec":{"ports":[{"port":80,"targetPort":"http"}],"selector":{"a":"b"}}}`))
	f.Add([]byte(`{"metadata":{"name":"n","labels":{"k":"v"}},"spec":{"taints":[{"key":"k","effect":"NoSchedule"}]}}`))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"web-5c689d88","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"u","controller":true}]},"data":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}},"revision":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastMatchesStrict(t, data)
	})
}
