package logdriver

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsRoundTrip(t *testing.T) {
	for _, o := range []Options{
		{Path: "/var/log/pods/ns_p_uid/web/0.log", MaxSize: 10 << 20, MaxFiles: 5},
		{Path: "/tmp/with space & query?x=1.log"},
	} {
		got, err := ParseOptions(o.Encode())
		if err != nil || got != o {
			t.Errorf("ParseOptions(Encode(%+v)) = %+v, %v", o, got, err)
		}
	}
	for _, bad := range []string{"", "max-size=1", "path=/x&max-size=big", "path=/x&max-files=two"} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("ParseOptions(%q): want an error", bad)
		}
	}
}

func TestCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "0.log")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	readied := false
	done := make(chan error, 1)
	go func() {
		done <- Copy(context.Background(), Options{Path: path}, outR, errR, func() error { readied = true; return nil })
	}()
	io.WriteString(outW, "hello\nwor")
	io.WriteString(errW, "oops\n")
	io.WriteString(outW, "ld\n")
	outW.Close()
	errW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Copy did not return once both streams ended")
	}
	if !readied {
		t.Error("ready was not called")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed record %q", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("record %q: %v", line, err)
		}
		got = append(got, f[1]+" "+f[2]+" "+f[3])
	}
	want := map[string]bool{"stdout F hello": true, "stdout F world": true, "stderr F oops": true}
	if len(got) != len(want) {
		t.Fatalf("records = %q, want %v", got, want)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected record %q (all: %q)", g, got)
		}
	}
}

func TestCopyStopsOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	outR, outW := io.Pipe()
	defer outW.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Copy(ctx, Options{Path: path}, outR, nil, func() error { return nil }) }()
	io.WriteString(outW, "line\n")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Copy did not stop when cancelled")
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), " stdout F line\n") {
		t.Errorf("log = %q: want the line written before the stop", b)
	}
}
