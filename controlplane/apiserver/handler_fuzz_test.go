package apiserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzHandler sends arbitrary requests to the API server: whatever the
// method, path, query and body, it answers without panicking and never with
// a 5xx (bad input is the client's problem: 4xx).
func FuzzHandler(f *testing.F) {
	f.Add(uint8(0), "/api/v1/namespaces/default/pods", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}}`))
	f.Add(uint8(1), "/apis/apps/v1/namespaces/default/deployments/web", []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":-1}}`))
	f.Add(uint8(2), "/api/v1/namespaces/default/pods?labelSelector=a%20in%20(b", []byte(nil))
	f.Add(uint8(2), "/api/v1/pods?watch=1&resourceVersion=999999&timeoutSeconds=1", []byte(nil))
	f.Add(uint8(3), "/api/v1/namespaces/default/services/x", []byte(`{"preconditions":{"uid":"u"}}`))
	f.Add(uint8(1), "/api/v1/nodes/n/status", []byte("kind: Node\nmetadata: {name: n}\n"))
	st := newStore(f)
	s := New(Config{Store: st})
	methods := []string{http.MethodPost, http.MethodPut, http.MethodGet, http.MethodDelete, http.MethodPatch, http.MethodHead}
	f.Fuzz(func(t *testing.T, m uint8, path string, body []byte) {
		if len(path) == 0 || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequest(methods[int(m)%len(methods)], "http://skiff"+path, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		if q := req.URL.Query(); q.Get("watch") != "" {
			q.Set("timeoutSeconds", "1") // a watch must end within the fuzz iteration
			req.URL.RawQuery = q.Encode()
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s -> %d: %s", req.Method, path, rec.Code, rec.Body.String())
		}
	})
}
