package remotecommand

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Streams are the client's ends of a remote command's streams.
type Streams struct {
	// Stdin is sent to the command, then closed at its EOF (nil: the
	// command's stdin is closed at once).
	Stdin io.Reader
	// Stdout and Stderr receive the command's output (nil: discarded).
	Stdout io.Writer
	Stderr io.Writer
	// Resize carries terminal sizes to send (nil: none).
	Resize <-chan TermSize
}

// ErrNoExitStatus means the connection ended before the command's exit
// status arrived: the agent, the API server or the network failed.
var ErrNoExitStatus = errors.New("remotecommand: connection closed before the command's exit status")

// Run speaks the client's side of the protocol on conn, which has been
// upgraded: it sends Stdin and Resize, writes the command's output to
// Stdout and Stderr, and returns its ExitStatus once the Exit frame came.
// It closes conn before it returns; ctx ending closes it early (the agent
// then kills the command) and Run returns ctx's error.
//
// The goroutine that copies Stdin ends at its next Read once Run has
// returned: a Read that blocks (an idle terminal) keeps it until then.
func Run(ctx context.Context, conn io.ReadWriteCloser, s Streams) (ExitStatus, error) {
	fw := NewFrameWriter(conn)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(func() { conn.Close() }) }
	defer closeConn()
	defer close(done)

	// Not waited for: see above. Without Stdin it only sends StdinClose
	// (from here too, so that Run reads output while it is sent).
	go copyStdin(s.Stdin, fw, done)
	if s.Resize != nil {
		wg.Go(func() {
			for {
				select {
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					if fw.Send(Resize, EncodeResize(sz)) != nil {
						return
					}
				case <-done:
					return
				}
			}
		})
	}
	wg.Go(func() {
		select {
		case <-ctx.Done():
			closeConn()
		case <-done:
		}
	})

	fr := NewFrameReader(conn)
	for {
		id, p, err := fr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ExitStatus{}, ctx.Err()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return ExitStatus{}, ErrNoExitStatus
			}
			return ExitStatus{}, fmt.Errorf("remotecommand: read: %w", err)
		}
		switch id {
		case Stdout, Stderr:
			w := s.Stdout
			if id == Stderr {
				w = s.Stderr
			}
			if w != nil {
				if _, err := w.Write(p); err != nil {
					return ExitStatus{}, fmt.Errorf("remotecommand: write %s: %w", id, err)
				}
			}
		case Exit:
			return DecodeExit(p)
		default:
			return ExitStatus{}, fmt.Errorf("%w: unexpected %s frame from the server", ErrProtocol, id)
		}
	}
}

// copyStdin sends in as Stdin frames, then StdinClose at its end (at
// once for a nil in).
func copyStdin(in io.Reader, fw *FrameWriter, done <-chan struct{}) {
	if in == nil {
		_ = fw.Send(StdinClose, nil)
		return
	}
	buf := make([]byte, MaxPayload)
	for {
		n, err := in.Read(buf)
		select {
		case <-done:
			return
		default:
		}
		if n > 0 {
			if fw.Send(Stdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = fw.Send(StdinClose, nil)
			return
		}
	}
}
