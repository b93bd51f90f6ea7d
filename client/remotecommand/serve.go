package remotecommand

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ServeOptions say which streams a command has.
type ServeOptions struct {
	// Stdin: Stdin frames are the command's input (without it they are
	// discarded and Session.Stdin is nil).
	Stdin bool
	// TTY: the command runs on a terminal, which merges stderr into
	// stdout (Session.Stderr is nil) and follows Resize frames.
	TTY bool
	// CloseWait bounds how long Serve waits, after the Exit frame, for the
	// client to close the connection (default 5s). Closing first could
	// reset the connection and lose the Exit frame.
	CloseWait time.Duration
}

// Session holds the streams a command runs with.
type Session struct {
	Stdin  io.Reader // nil without ServeOptions.Stdin
	Stdout io.Writer
	Stderr io.Writer // nil with a TTY
	// Resize delivers terminal sizes (nil without a TTY). It keeps only
	// the newest size: a reader that falls behind skips stale ones.
	Resize <-chan TermSize
}

// RunFunc runs a command with a session's streams and returns its exit
// code once it exited and its output was written. An error means it could
// not run at all; ctx ends when the client went away.
type RunFunc func(ctx context.Context, s Session) (exitCode int, err error)

// CloseWriter is a connection that can end its sending side alone
// (*tls.Conn, *net.TCPConn).
type CloseWriter interface {
	CloseWrite() error
}

// Serve speaks the agent's side of the protocol on conn, which has been
// upgraded: it runs run with the session's streams, cancelling its context
// when the client closes the connection, then sends the Exit frame
// (run's error becomes ExitCannotRun with the error's text), waits for the
// client to close, and closes conn. It returns run's error, or the
// connection's when the Exit frame could not be sent.
func Serve(ctx context.Context, conn io.ReadWriteCloser, opts ServeOptions, run RunFunc) error {
	if opts.CloseWait <= 0 {
		opts.CloseWait = 5 * time.Second
	}
	fw := NewFrameWriter(conn)
	sess := Session{Stdout: fw.Stream(Stdout)}
	if !opts.TTY {
		sess.Stderr = fw.Stream(Stderr)
	}
	stdinR, stdinW := io.Pipe()
	if opts.Stdin {
		sess.Stdin = stdinR
	}
	resize := make(chan TermSize, 1)
	if opts.TTY {
		sess.Resize = resize
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	readerDone := make(chan error, 1)
	go func() {
		err := readClientFrames(conn, opts, stdinW, resize)
		// The client is gone (or broke the protocol): no more input, and
		// nobody to run the command for.
		stdinW.CloseWithError(io.ErrUnexpectedEOF)
		cancel()
		readerDone <- err
	}()

	code, runErr := run(runCtx, sess)
	// The command is done with stdin; a reader blocked handing it input
	// gets an error and goes on reading frames.
	stdinR.CloseWithError(io.ErrClosedPipe)
	status := ExitStatus{Code: code}
	if runErr != nil {
		status = ExitStatus{Code: ExitCannotRun, Message: runErr.Error()}
	}
	sendErr := fw.Send(Exit, EncodeExit(status))
	if sendErr == nil {
		if cw, ok := conn.(CloseWriter); ok {
			_ = cw.CloseWrite()
		}
		t := time.NewTimer(opts.CloseWait)
		select {
		case <-readerDone:
			readerDone <- nil // for the wait below
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	conn.Close()
	<-readerDone
	if runErr != nil {
		return runErr
	}
	if sendErr != nil {
		return fmt.Errorf("remotecommand: send exit status: %w", sendErr)
	}
	return nil
}

// readClientFrames dispatches the client's frames until the connection
// ends (nil for a clean close) or the client breaks the protocol.
func readClientFrames(conn io.Reader, opts ServeOptions, stdin *io.PipeWriter, resize chan TermSize) error {
	fr := NewFrameReader(conn)
	stdinOpen := opts.Stdin
	for {
		id, p, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch id {
		case Stdin:
			if stdinOpen && len(p) > 0 {
				if _, err := stdin.Write(p); err != nil {
					stdinOpen = false // the command stopped reading
				}
			}
		case StdinClose:
			if stdinOpen {
				stdin.Close()
				stdinOpen = false
			}
		case Resize:
			sz, err := DecodeResize(p)
			if err != nil {
				return err
			}
			if opts.TTY {
				// Keep only the newest size.
				select {
				case <-resize:
				default:
				}
				resize <- sz
			}
		default:
			return fmt.Errorf("%w: unexpected %s frame from the client", ErrProtocol, id)
		}
	}
}
