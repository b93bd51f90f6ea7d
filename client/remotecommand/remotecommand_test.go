package remotecommand

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	big := bytes.Repeat([]byte("x"), MaxPayload+10)
	if _, err := fw.Stream(Stdout).Write(big); err != nil {
		t.Fatal(err)
	}
	if err := fw.Send(Exit, EncodeExit(ExitStatus{Code: -1, Message: "boom"})); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(&buf)
	var got []byte
	for range 2 {
		id, p, err := fr.Next()
		if err != nil || id != Stdout {
			t.Fatalf("frame: %v %v", id, err)
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, big) {
		t.Errorf("stdout: got %d bytes, want %d", len(got), len(big))
	}
	id, p, err := fr.Next()
	if err != nil || id != Exit {
		t.Fatalf("exit frame: %v %v", id, err)
	}
	st, err := DecodeExit(p)
	if err != nil || st != (ExitStatus{Code: -1, Message: "boom"}) {
		t.Errorf("exit = %+v, %v", st, err)
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	if err := WriteFrame(io.Discard, Stdout, make([]byte, MaxPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized write: %v", err)
	}
	huge := []byte{1, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := NewFrameReader(bytes.NewReader(huge)).Next(); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized read: %v", err)
	}
	cut := []byte{1, 0, 0, 0, 5, 'a'}
	if _, _, err := NewFrameReader(bytes.NewReader(cut)).Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v", err)
	}
	if _, err := DecodeResize([]byte{1}); !errors.Is(err, ErrProtocol) {
		t.Errorf("short resize: %v", err)
	}
	if _, err := DecodeExit(nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("short exit: %v", err)
	}
	if sz, _ := DecodeResize(EncodeResize(TermSize{Width: 132, Height: 43})); sz != (TermSize{132, 43}) {
		t.Errorf("resize round trip: %+v", sz)
	}
}

// serve runs Serve on one end of a pipe and returns the other end and
// Serve's result.
func serve(t *testing.T, opts ServeOptions, run RunFunc) (net.Conn, <-chan error) {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- Serve(context.Background(), server, opts, run)
	}()
	t.Cleanup(func() {
		client.Close()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return client, done
}

func TestExecStreamsAndExitCode(t *testing.T) {
	conn, served := serve(t, ServeOptions{Stdin: true}, func(ctx context.Context, s Session) (int, error) {
		if s.Resize != nil {
			t.Error("resize channel without a TTY")
		}
		in, err := io.ReadAll(s.Stdin)
		if err != nil {
			return 0, err
		}
		io.WriteString(s.Stdout, strings.ToUpper(string(in)))
		io.WriteString(s.Stderr, "warning\n")
		return 3, nil
	})
	var out, errOut bytes.Buffer
	input := strings.Repeat("hello ", 20000) // several frames
	st, err := Run(context.Background(), conn, Streams{Stdin: strings.NewReader(input), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if st != (ExitStatus{Code: 3}) {
		t.Errorf("exit = %+v, want code 3", st)
	}
	if out.String() != strings.ToUpper(input) || errOut.String() != "warning\n" {
		t.Errorf("stdout %d bytes, stderr %q", out.Len(), errOut.String())
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestExecWithoutStdin(t *testing.T) {
	conn, _ := serve(t, ServeOptions{}, func(ctx context.Context, s Session) (int, error) {
		if s.Stdin != nil {
			t.Error("stdin without ServeOptions.Stdin")
		}
		io.WriteString(s.Stdout, "ok")
		return 0, nil
	})
	var out bytes.Buffer
	// Input sent anyway is discarded, not an error.
	st, err := Run(context.Background(), conn, Streams{Stdin: strings.NewReader("ignored"), Stdout: &out})
	if err != nil || st.Code != 0 || out.String() != "ok" {
		t.Errorf("Run = %+v, %v, out %q", st, err, out.String())
	}
}

func TestExecCannotRun(t *testing.T) {
	conn, served := serve(t, ServeOptions{}, func(ctx context.Context, s Session) (int, error) {
		return 0, errors.New(`exec: "nope": executable file not found in $PATH`)
	})
	st, err := Run(context.Background(), conn, Streams{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != ExitCannotRun || !strings.Contains(st.Message, "executable file not found") {
		t.Errorf("exit = %+v", st)
	}
	if err := <-served; err == nil {
		t.Error("Serve returned nil for a command that could not run")
	}
}

func TestExecTTYResize(t *testing.T) {
	got := make(chan TermSize, 10)
	conn, _ := serve(t, ServeOptions{TTY: true, Stdin: true}, func(ctx context.Context, s Session) (int, error) {
		if s.Stderr != nil {
			t.Error("stderr with a TTY")
		}
		for {
			select {
			case sz := <-s.Resize:
				got <- sz
				if sz.Width == 100 {
					return 0, nil
				}
			case <-ctx.Done():
				return 1, nil
			}
		}
	})
	resize := make(chan TermSize)
	pr, pw := io.Pipe()
	defer pw.Close()
	res := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), conn, Streams{Stdin: pr, Resize: resize})
		res <- err
	}()
	resize <- TermSize{Width: 80, Height: 24}
	if sz := <-got; sz != (TermSize{80, 24}) {
		t.Errorf("first size %+v", sz)
	}
	resize <- TermSize{Width: 100, Height: 30}
	if sz := <-got; sz != (TermSize{100, 30}) {
		t.Errorf("second size %+v", sz)
	}
	if err := <-res; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestClientCancelKillsCommand: a client that gives up closes the
// connection and the command's context ends.
func TestClientCancelKillsCommand(t *testing.T) {
	started := make(chan struct{})
	var mu sync.Mutex
	var cause error
	conn, served := serve(t, ServeOptions{}, func(ctx context.Context, s Session) (int, error) {
		close(started)
		<-ctx.Done()
		mu.Lock()
		cause = ctx.Err()
		mu.Unlock()
		return 137, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := Run(ctx, conn, Streams{})
		res <- err
	}()
	<-started
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve kept running after the client left")
	}
	mu.Lock()
	defer mu.Unlock()
	if cause == nil {
		t.Error("the command's context did not end")
	}
}

func TestServerGoneWithoutExit(t *testing.T) {
	client, server := net.Pipe()
	go func() {
		fw := NewFrameWriter(server)
		fw.Stream(Stdout).Write([]byte("partial"))
		server.Close()
	}()
	var out bytes.Buffer
	_, err := Run(context.Background(), client, Streams{Stdout: &out})
	if !errors.Is(err, ErrNoExitStatus) {
		t.Errorf("Run = %v, want ErrNoExitStatus", err)
	}
	if out.String() != "partial" {
		t.Errorf("output before the failure: %q", out.String())
	}
}

func TestClientProtocolError(t *testing.T) {
	conn, _ := serve(t, ServeOptions{}, func(ctx context.Context, s Session) (int, error) {
		<-ctx.Done()
		return 0, nil
	})
	if err := WriteFrame(conn, Stdout, []byte("clients do not send stdout")); err != nil {
		t.Fatal(err)
	}
	// The server gives up on this client: its connection ends.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.EOF) {
		t.Errorf("reading after a protocol error: %v", err)
	}
}
