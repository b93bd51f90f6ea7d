package api

import "testing"

// BenchmarkDecodeDefaultValidate is the per-write cost of the API server's
// admission path for a small Deployment.
func BenchmarkDecodeDefaultValidate(b *testing.B) {
	data := readTestdata(b, "nginx-deployment.yaml")
	b.ReportAllocs()
	for b.Loop() {
		o, err := DecodeObject(data)
		if err != nil {
			b.Fatal(err)
		}
		Default(o)
		if errs := Validate(o); errs != nil {
			b.Fatal(errs)
		}
	}
}

// BenchmarkDecodeJSON is the same with a JSON body, as clients send.
func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nginx-deployment","labels":{"app":"nginx"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.14.2","ports":[{"containerPort":80}]}]}}}}`)
	b.ReportAllocs()
	for b.Loop() {
		o, err := DecodeObject(data)
		if err != nil {
			b.Fatal(err)
		}
		Default(o)
		if errs := Validate(o); errs != nil {
			b.Fatal(errs)
		}
	}
}

// BenchmarkDecodeAsJSON is the API server's path: the kind is known from
// the URL, and well-formed bodies take the fast path.
func BenchmarkDecodeAsJSON(b *testing.B) {
	data := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nginx-deployment","labels":{"app":"nginx"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.14.2","ports":[{"containerPort":80}]}]}}}}`)
	info, _ := ByKind(KindDeployment)
	b.ReportAllocs()
	for b.Loop() {
		o, err := DecodeAs(data, info)
		if err != nil {
			b.Fatal(err)
		}
		Default(o)
		if errs := Validate(o); errs != nil {
			b.Fatal(errs)
		}
	}
}
