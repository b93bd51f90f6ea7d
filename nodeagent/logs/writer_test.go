package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepClock returns t0, t0+1ms, t0+2ms, …
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func ts(ms int) string {
	return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano)
}

type write struct {
	stream Stream
	data   string
}

func TestWriterRecords(t *testing.T) {
	long := strings.Repeat("a", MaxLineSize)
	tests := []struct {
		name   string
		writes []write
		want   []string // records, without the timestamps' prefix
	}{
		{"one line", []write{{Stdout, "hello\n"}}, []string{"stdout F hello"}},
		{"two lines in one write", []write{{Stdout, "a\nb\n"}}, []string{"stdout F a", "stdout F b"}},
		{"line across writes", []write{{Stderr, "he"}, {Stderr, "llo\n"}}, []string{"stderr F hello"}},
		{"empty line", []write{{Stdout, "\n"}}, []string{"stdout F "}},
		{"unterminated at close is partial", []write{{Stdout, "a\nprompt> "}}, []string{"stdout F a", "stdout P prompt> "}},
		{"exactly max is one full record", []write{{Stdout, long + "\n"}}, []string{"stdout F " + long}},
		{"max+1 splits", []write{{Stdout, long + "b\n"}}, []string{"stdout P " + long, "stdout F b"}},
		{"2*max splits into P and F", []write{{Stdout, long + long + "\n"}}, []string{"stdout P " + long, "stdout F " + long}},
		{"long without newline flushed at max", []write{{Stdout, long + "xy"}}, []string{"stdout P " + long, "stdout P xy"}},
		{"streams keep their own lines", []write{{Stdout, "out-"}, {Stderr, "err\n"}, {Stdout, "line\n"}},
			[]string{"stderr F err", "stdout F out-line"}},
		{"carriage return kept", []write{{Stdout, "a\r\n"}}, []string{"stdout F a\r"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c", "0.log")
			w, err := NewWriter(path, WriterOptions{Now: stepClock()})
			if err != nil {
				t.Fatal(err)
			}
			for _, wr := range tc.writes {
				n, err := w.Stream(wr.stream).Write([]byte(wr.data))
				if err != nil || n != len(wr.data) {
					t.Fatalf("Write(%q) = %d, %v", wr.data, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			for i, r := range tc.want {
				fmt.Fprintf(&want, "%s %s\n", ts(i+1), r)
			}
			if string(b) != want.String() {
				t.Errorf("file:\n%q\nwant:\n%q", b, want.String())
			}
		})
	}
}

func TestWriterUnknownStreamAndClosed(t *testing.T) {
	w, err := NewWriter(filepath.Join(t.TempDir(), "0.log"), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Stream("stdin").Write([]byte("x\n")); err == nil {
		t.Error("write to stream stdin succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Stream(Stdout).Write([]byte("x\n")); err != ErrClosed {
		t.Errorf("write after close: %v, want ErrClosed", err)
	}
}

func TestWriterAppendsToExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	for i := range 2 {
		w, err := NewWriter(path, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w.Stream(Stdout), "run %d\n", i)
		w.Close()
	}
	var out strings.Builder
	if err := Read(t.Context(), path, ReadOptions{Tail: -1}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "run 0\nrun 1\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestWriterRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	// Each record is 24 (timestamp) + 9 + 6 ("line07") + 1 = 40 bytes:
	// 100 bytes hold two records, and the third rotates.
	w, err := NewWriter(path, WriterOptions{MaxSize: 100, MaxFiles: 3, Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		fmt.Fprintf(w.Stream(Stdout), "line%02d\n", i)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, n := range []string{path, path + ".1", path + ".2", path + ".3"} {
		if b, err := os.ReadFile(n); err == nil {
			files[filepath.Base(n)] = string(b)
		}
	}
	if len(files) != 3 {
		t.Fatalf("files: %v, want 0.log, 0.log.1, 0.log.2", files)
	}
	for name, want := range map[string][]string{
		"0.log":   {"line08"},
		"0.log.1": {"line06", "line07"},
		"0.log.2": {"line04", "line05"},
	} {
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(files[name], "\n"), "\n") {
			if len(l) > 100 {
				t.Errorf("%s: record longer than the file limit: %q", name, l)
			}
			got = append(got, l[strings.LastIndexByte(l, ' ')+1:])
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s holds %v, want %v", name, got, want)
		}
	}
	var out strings.Builder
	if err := Read(t.Context(), path, ReadOptions{Tail: -1}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "line04\nline05\nline06\nline07\nline08\n"; out.String() != want {
		t.Errorf("Read across rotated files = %q, want %q", out.String(), want)
	}
}

func TestWriterTruncatesWithOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 100, MaxFiles: 1, Now: stepClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		fmt.Fprintf(w.Stream(Stdout), "line%02d\n", i)
	}
	w.Close()
	var out strings.Builder
	if err := Read(t.Context(), path, ReadOptions{Tail: -1}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "line04\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Error("a rotated file exists with MaxFiles 1")
	}
}

// TestWriterConcurrentStreams writes both streams from two goroutines
// while rotating: every record must parse and every line arrive once, in
// order within its stream.
func TestWriterConcurrentStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 4096, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	for _, s := range []Stream{Stdout, Stderr} {
		wg.Go(func() {
			for i := range n {
				// Split writes so lines are assembled across calls.
				fmt.Fprintf(w.Stream(s), "%s-%d", s, i)
				fmt.Fprintf(w.Stream(s), "-end\n")
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Stream{Stdout, Stderr} {
		var out strings.Builder
		if err := Read(t.Context(), path, ReadOptions{Tail: -1, Streams: []Stream{s}}, &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != n {
			t.Fatalf("%s: %d lines, want %d", s, len(lines), n)
		}
		for i, l := range lines {
			if want := fmt.Sprintf("%s-%d-end", s, i); l != want {
				t.Fatalf("%s line %d = %q, want %q", s, i, l, want)
			}
		}
	}
}
