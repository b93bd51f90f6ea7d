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
