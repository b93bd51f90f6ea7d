package apiserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestWatchFromResourceVersion(t *testing.T) {
	ts := newTestServer(t, Config{})
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	a := expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "")), http.StatusCreated).object(t)
	rv := meta(t, a)["resourceVersion"].(string)

	w := openWatch(t, pods+"?watch=true&resourceVersion="+rv)
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "b", "web", "")), http.StatusCreated)
	expect(t, do(t, "PUT", pods+"/a", fmt.Sprintf(podJSON, "a", "web2", "")), http.StatusOK)
	expect(t, do(t, "DELETE", pods+"/b", ""), http.StatusOK)
	w.expectEvent("ADDED", "b")
	ev := w.expectEvent("MODIFIED", "a")
	if ev.Object["kind"] != "Pod" || ev.Object["apiVersion"] != "v1" {
		t.Fatalf("event object lacks kind: %v", ev.Object)
	}
	w.expectEvent("DELETED", "b")
	if g := gaugeValue(t, ts); g != 1 {
		t.Fatalf("open watches gauge = %v, want 1", g)
	}
}

func TestWatchInitialListSelectorsAndBookmarks(t *testing.T) {
	ts := newTestServer(t, Config{BookmarkInterval: 20 * time.Millisecond})
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "a", "web", "node-1")), http.StatusCreated)
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "b", "db", "node-1")), http.StatusCreated)

	w := openWatch(t, ts.URL+"/api/v1/pods?watch=1&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dnode-1&allowWatchBookmarks=true")
	w.expectEvent("ADDED", "a")
	bm := w.expectEvent("BOOKMARK", "")
	md := meta(t, bm.Object)
	if md["annotations"].(map[string]any)[InitialEventsEndAnnotation] != "true" || bm.Object["kind"] != "Pod" {
		t.Fatalf("initial-events-end bookmark: %v", bm.Object)
	}
	listRV := md["resourceVersion"].(string)
	if listRV == "" {
		t.Fatal("bookmark without resourceVersion")
	}
	// A non-matching change is not sent; a periodic bookmark then reports
	// a newer version, so a resumed watch does not start from an old one.
	expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, "c", "db", "node-1")), http.StatusCreated)
	deadline := time.Now().Add(3 * time.Second)
	for {
		ev := w.next()
		if ev.Type != "BOOKMARK" {
			t.Fatalf("unexpected %s event for a filtered-out object: %v", ev.Type, ev.Object)
		}
		if meta(t, ev.Object)["resourceVersion"].(string) != listRV {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bookmarks never advanced")
		}
	}
	// A label change moving an object into the selection is an ADDED.
	expect(t, do(t, "PUT", pods+"/b", fmt.Sprintf(podJSON, "b", "web", "node-1")), http.StatusOK)
	w.expectEvent("ADDED", "b")
}

func TestWatchVersionErrors(t *testing.T) {
	ts := newTestServer(t, Config{FutureVersionWait: 50 * time.Millisecond}, store.WithHistory(2))
	pods := ts.URL + "/api/v1/namespaces/default/pods"
	for i := range 5 {
		expect(t, do(t, "POST", pods, fmt.Sprintf(podJSON, fmt.Sprintf("p%d", i), "web", "")), http.StatusCreated)
	}
	expectStatus(t, do(t, "GET", pods+"?watch=true&resourceVersion=1", ""), http.StatusGone, api.ReasonGone, "too old")
	expectStatus(t, do(t, "GET", pods+"?watch=true&resourceVersion=x", ""), http.StatusBadRequest, api.ReasonBadRequest, "resourceVersion")
	last := ts.store.LastIndex()
	s := expectStatus(t, do(t, "GET", pods+"?watch=true&resourceVersion=99999", ""), http.StatusBadRequest, api.ReasonBadRequest, "99999")
	if !strings.Contains(s.Message, fmt.Sprint(last)) {
		t.Fatalf("future version message %q does not name the latest %d", s.Message, last)
	}
	// A list at a future version is refused the same way (after a short wait).
	expectStatus(t, do(t, "GET", pods+"?resourceVersion=99999", ""), http.StatusBadRequest, api.ReasonBadRequest, "newer than")
	// Still serving.
	w := openWatch(t, pods+fmt.Sprintf("?watch=true&resourceVersion=%d", last))
	expect(t, do(t, "DELETE", pods+"/p1", ""), http.StatusOK)
	w.expectEvent("DELETED", "p1")
}

func TestWatchEndsWhenClientLeaves(t *testing.T) {
	ts := newTestServer(t, Config{})
	w := openWatch(t, ts.URL+"/api/v1/nodes?watch=true")
	deadline := time.Now().Add(2 * time.Second)
	for gaugeValue(t, ts) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("watch not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.resp.Body.Close()
	for gaugeValue(t, ts) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("watch still open after the client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gaugeValue(t *testing.T, ts *testServer) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "skiff_apiserver_open_watches" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no open watches gauge")
	return 0
}
