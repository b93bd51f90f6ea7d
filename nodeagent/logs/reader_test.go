package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = `2026-01-02T03:04:05.1Z stdout F one
2026-01-02T03:04:05.2Z stderr F err one
2026-01-02T03:04:05.3Z stdout P tw
2026-01-02T03:04:05.4Z stderr F err two
2026-01-02T03:04:05.5Z stdout F o
not a record at all
2026-01-02T03:04:05.6Z stdin F bad stream
2026-01-02T03:04:05.7Z stdout X bad tag
2026-01-02T03:04:05.8Z stdout F
2026-01-02T03:04:05.9Z stdout F three
2026-01-02T03:04:06Z stdout P unterminated
`

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		opts ReadOptions
		want string
	}{
		{"all", ReadOptions{Tail: -1},
			"one\nerr one\nerr two\ntwo\n\nthree\nunterminated\n"},
		{"tail 0", ReadOptions{Tail: 0}, ""},
		{"tail 2 counts joined lines", ReadOptions{Tail: 2}, "three\nunterminated\n"},
		{"tail more than there is", ReadOptions{Tail: 100},
			"one\nerr one\nerr two\ntwo\n\nthree\nunterminated\n"},
		{"stdout", ReadOptions{Tail: -1, Streams: []Stream{Stdout}}, "one\ntwo\n\nthree\nunterminated\n"},
		{"stderr tail 1", ReadOptions{Tail: 1, Streams: []Stream{Stderr}}, "err two\n"},
		{"timestamps: the first record's", ReadOptions{Tail: 3, Timestamps: true},
			"2026-01-02T03:04:05.8Z \n2026-01-02T03:04:05.9Z three\n2026-01-02T03:04:06Z unterminated\n"},
		{"joined line keeps its first timestamp", ReadOptions{Tail: -1, Timestamps: true, Streams: []Stream{Stdout}},
			"2026-01-02T03:04:05.1Z one\n2026-01-02T03:04:05.3Z two\n2026-01-02T03:04:05.8Z \n" +
				"2026-01-02T03:04:05.9Z three\n2026-01-02T03:04:06Z unterminated\n"},
		{"since", ReadOptions{Tail: -1, SinceTime: time.Date(2026, 1, 2, 3, 4, 5, 4e8, time.UTC)},
			"err two\n\nthree\nunterminated\n"},
		{"since then tail", ReadOptions{Tail: 1, SinceTime: time.Date(2026, 1, 2, 3, 4, 5, 4e8, time.UTC),
			Streams: []Stream{Stderr}}, "err two\n"},
	}
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Read(t.Context(), path, tc.opts, &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", out.String(), tc.want)
			}
		})
	}
}

func TestReadNoFile(t *testing.T) {
	err := Read(t.Context(), filepath.Join(t.TempDir(), "none.log"), ReadOptions{Tail: -1}, &bytes.Buffer{})
	if !errors.Is(err, ErrNoLog) {
		t.Errorf("err = %v, want ErrNoLog", err)
	}
}

// TestReadLongLineRoundTrip: a line written longer than MaxLineSize comes
// back whole.
func TestReadLongLineRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("0123456789", 5000) // 50,000 bytes: 4 records
	fmt.Fprintf(w.Stream(Stdout), "%s\nshort\n", long)
	w.Close()
	var out bytes.Buffer
	if err := Read(t.Context(), path, ReadOptions{Tail: 2}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != long+"\nshort\n" {
		t.Errorf("got %d bytes, want the %d-byte line and \"short\"", out.Len(), len(long))
	}
}

// TestReadPartialAcrossRotation: the pieces of one line in two files are
// joined.
func TestReadPartialAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	os.WriteFile(path+".2", []byte("2026-01-02T03:04:05.1Z stdout F first\n"), 0o600)
	os.WriteFile(path+".1", []byte("2026-01-02T03:04:05.2Z stdout P sec\n"), 0o600)
	os.WriteFile(path, []byte("2026-01-02T03:04:05.3Z stdout F ond\n2026-01-02T03:04:05.4Z stdout F third\n"), 0o600)
	var out bytes.Buffer
	if err := Read(t.Context(), path, ReadOptions{Tail: 2}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "second\nthird\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// syncBuffer is a bytes.Buffer safe for a follower and the test.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	flushes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until cond holds or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadFollowAcrossRotation follows a file that a writer rotates many
// times (more than once between some polls): every line arrives once, in
// order, and a canceled follower returns the context's error.
func TestReadFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	// ~45-byte records: a rotation every 6 lines.
	w, err := NewWriter(path, WriterOptions{MaxSize: 300, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	fmt.Fprintln(w.Stream(Stdout), "before-1")
	fmt.Fprintln(w.Stream(Stdout), "before-2")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, Tail: 1, PollInterval: 2 * time.Millisecond}, out)
	}()
	waitFor(t, "the tail", func() bool { return out.String() == "before-2\n" })

	var want strings.Builder
	want.WriteString("before-2\n")
	for i := range 200 {
		fmt.Fprintf(w.Stream(Stdout), "line-%03d\n", i)
		fmt.Fprintf(&want, "line-%03d\n", i)
		if i%30 == 29 {
			// Several rotations may pass between two polls, but not more
			// than the files kept: a follower that lags further loses
			// lines, as the kubelet's does.
			last := fmt.Sprintf("line-%03d\n", i)
			waitFor(t, last, func() bool { return strings.HasSuffix(out.String(), last) })
		}
	}
	waitFor(t, "200 followed lines", func() bool { return strings.Contains(out.String(), "line-199") })
	// Give a buggy follower the chance to write duplicates.
	time.Sleep(20 * time.Millisecond)
	if out.String() != want.String() {
		t.Errorf("followed output differs:\ngot  %q\nwant %q", out.String(), want.String())
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
	if out.flushes == 0 {
		t.Error("the follower never flushed its output")
	}
}

// TestReadFollowStopsWhenNotAlive: once Alive reports false the follower
// writes what is left, including an unterminated line, and returns nil.
func TestReadFollowStopsWhenNotAlive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	alive := true
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(t.Context(), path, ReadOptions{Follow: true, Tail: -1, PollInterval: 2 * time.Millisecond,
			Alive: func() bool { mu.Lock(); defer mu.Unlock(); return alive }}, out)
	}()
	fmt.Fprint(w.Stream(Stdout), "a\nb")
	waitFor(t, "the first line", func() bool { return out.String() == "a\n" })
	fmt.Fprint(w.Stream(Stderr), "bye\n")
	w.Close() // "b" becomes a partial record
	mu.Lock()
	alive = false
	mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return once the container was gone")
	}
	if want := "a\nbye\nb\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestReadFollowTruncated: a file truncated under the follower (MaxFiles
// 1) is read again from its start.
func TestReadFollowTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 200, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1, PollInterval: 2 * time.Millisecond}, out)
	}()
	fmt.Fprintln(w.Stream(Stdout), "l0")
	waitFor(t, "l0", func() bool { return out.String() == "l0\n" })
	for i := 1; i <= 6; i++ { // ~40 bytes each: truncates after the 5th
		fmt.Fprintf(w.Stream(Stdout), "l%d\n", i)
		waitFor(t, fmt.Sprintf("l%d", i), func() bool { return strings.HasSuffix(out.String(), fmt.Sprintf("l%d\n", i)) })
	}
	if want := "l0\nl1\nl2\nl3\nl4\nl5\nl6\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	cancel()
	<-done
}
