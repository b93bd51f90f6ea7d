package linear

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op is one hand-written operation: client, call and return times.
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	if out.Unknown {
		ret = never
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func create(k, v string) Input { return Input{Op: OpCreate, Key: k, Value: v} }
func put(k, v string) Input    { return Input{Op: OpPut, Key: k, Value: v} }
func del(k string) Input       { return Input{Op: OpDelete, Key: k} }
func get(k string) Input       { return Input{Op: OpGet, Key: k} }

var (
	created  = Output{Status: http.StatusCreated}
	ok       = Output{Status: http.StatusOK}
	notFound = Output{Status: http.StatusNotFound}
	conflict = Output{Status: http.StatusConflict}
	unknown  = Output{Unknown: true}
)

func value(v string) Output { return Output{Status: http.StatusOK, Value: v} }

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"sequential create put delete", []porcupine.Operation{
			op(0, 0, 1, get("a"), notFound),
			op(0, 2, 3, create("a", "1"), created),
			op(0, 4, 5, get("a"), value("1")),
			op(0, 6, 7, put("a", "2"), ok),
			op(0, 8, 9, get("a"), value("2")),
			op(0, 10, 11, del("a"), ok),
			op(0, 12, 13, get("a"), notFound),
			op(0, 14, 15, put("a", "3"), notFound),
		}, true},
		{"stale read after an acknowledged put", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(0, 2, 3, put("a", "2"), ok),
			op(1, 4, 5, get("a"), value("1")),
		}, false},
		{"acknowledged create lost", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(1, 2, 3, get("a"), notFound),
		}, false},
		{"second create of the same key acknowledged", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(1, 2, 3, create("a", "2"), created),
		}, false},
		{"second create conflicts", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(1, 2, 3, create("a", "2"), conflict),
			op(1, 4, 5, get("a"), value("1")),
		}, true},
		{"concurrent put: a read sees either value", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(0, 2, 10, put("a", "2"), ok),
			op(1, 3, 4, get("a"), value("2")),
			op(2, 5, 6, get("a"), value("2")),
		}, true},
		{"concurrent put: a read goes back", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(0, 2, 10, put("a", "2"), ok),
			op(1, 3, 4, get("a"), value("2")),
			op(2, 5, 6, get("a"), value("1")),
		}, false},
		{"unknown create never took effect", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), unknown),
			op(1, 2, 3, get("a"), notFound),
		}, true},
		{"unknown create took effect late", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), unknown),
			op(1, 2, 3, get("a"), notFound),
			op(1, 4, 5, get("a"), value("1")),
		}, true},
		{"unknown create took effect once, not twice", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), unknown),
			op(1, 2, 3, get("a"), value("1")),
			op(1, 4, 5, del("a"), ok),
			op(1, 6, 7, get("a"), value("1")),
		}, false},
		{"unknown put cannot invent a value", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(0, 2, 3, put("a", "2"), unknown),
			op(1, 4, 5, get("a"), value("3")),
		}, false},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), created),
			op(1, 0, 1, create("b", "1"), created),
			op(0, 2, 3, get("b"), value("1")),
			op(1, 2, 3, get("a"), value("1")),
		}, true},
		{"unexpected status", []porcupine.Operation{
			op(0, 0, 1, create("a", "1"), Output{Status: http.StatusBadRequest}),
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := porcupine.CheckOperations(Model(), tc.ops)
			if got != tc.want {
				t.Errorf("linearizable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	h := NewHistory()
	before := time.Now()
	h.Record(0, create("a", "1"), before, created, Definite)
	h.Record(0, get("a"), time.Now(), Output{}, NotApplied)
	h.Record(1, get("a"), time.Now(), unknown, Unknown)
	h.Record(1, put("a", "2"), time.Now(), Output{}, Unknown)
	time.Sleep(2 * time.Millisecond)
	mark := time.Now()
	h.Record(2, put("a", "3"), time.Now(), value(""), Definite)
	h.Record(2, get("a"), time.Now(), value("3"), Definite)

	if got, want := h.Stats(), (Stats{Ops: 4, Acked: 2, Unknown: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	ops := h.Operations()
	if ops[1].Return != never || !ops[1].Output.(Output).Unknown {
		t.Errorf("unknown put recorded as %+v, want an open return", ops[1])
	}
	if d, ok := h.FirstAckAfter(mark); !ok || d < 0 || d > time.Second {
		t.Errorf("FirstAckAfter = %v, %v", d, ok)
	}
	if n := h.AckedBetween(mark, time.Now()); n != 1 {
		t.Errorf("AckedBetween(mark, now) = %d, want 1", n)
	}
	if n := h.AckedBetween(before, time.Now()); n != 2 {
		t.Errorf("AckedBetween(start, now) = %d, want 2", n)
	}
	if _, ok := h.FirstAckAfter(time.Now()); ok {
		t.Error("FirstAckAfter(now) found a write")
	}
	if err := h.Check(10*time.Second, t.TempDir()); err != nil {
		t.Error(err)
	}
	h.Record(3, get("a"), time.Now(), value("1"), Definite) // stale
	if err := h.Check(10*time.Second, t.TempDir()); err == nil {
		t.Error("a stale read passed the check")
	}
}

func TestDoClassifies(t *testing.T) {
	var code int
	var header string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if header != "" {
			w.Header().Set(headerWriteOutcome, header)
		}
		w.WriteHeader(code)
		w.Write(Body("a", "7"))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name   string
		url    string
		in     Input
		code   int
		header string
		want   Output
		oc     Outcome
	}{
		{"created", srv.URL, create("a", "7"), 201, "", created, Definite},
		{"read", srv.URL, get("a"), 200, "", value("7"), Definite},
		{"conflict", srv.URL, create("a", "7"), 409, "", conflict, Definite},
		{"no leader yet", srv.URL, put("a", "7"), 503, "", Output{}, NotApplied},
		{"commit unknown", srv.URL, put("a", "7"), 503, "unknown", unknown, Unknown},
		{"server error", srv.URL, del("a"), 500, "", unknown, Unknown},
		{"refused dial", dead, put("a", "7"), 0, "", Output{}, NotApplied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, header = tc.code, tc.header
			out, oc := Do(context.Background(), srv.Client(), tc.url, tc.in)
			if out != tc.want || oc != tc.oc {
				t.Errorf("Do = %+v, %s; want %+v, %s", out, oc, tc.want, tc.oc)
			}
		})
	}
	code = 200
	if st, v, err := ReadLocal(context.Background(), srv.Client(), srv.URL, "a"); err != nil || st != 200 || v != "7" {
		t.Errorf("ReadLocal = %d, %q, %v", st, v, err)
	}
}
