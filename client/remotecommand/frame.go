package remotecommand

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Protocol is the token of the HTTP Upgrade header that starts the
// protocol (answered by 101 Switching Protocols).
const Protocol = "skiff-remotecommand.v1"

// MaxPayload is the largest payload a frame carries; longer writes are
// split.
const MaxPayload = 32 << 10

// StreamID says what a frame carries.
type StreamID byte

// Streams. Values are part of the wire format.
const (
	Stdin      StreamID = 0 // client -> server: input for the command
	Stdout     StreamID = 1 // server -> client
	Stderr     StreamID = 2 // server -> client (never with a TTY)
	Resize     StreamID = 3 // client -> server: a terminal size (TTY only)
	StdinClose StreamID = 4 // client -> server: end of input (empty)
	Exit       StreamID = 5 // server -> client: the exit status, last frame
)

func (s StreamID) String() string {
	switch s {
	case Stdin:
		return "stdin"
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case Resize:
		return "resize"
	case StdinClose:
		return "stdin-close"
	case Exit:
		return "exit"
	}
	return fmt.Sprintf("stream(%d)", byte(s))
}

// ErrProtocol marks a peer that broke the protocol (an unknown stream, an
// oversized or malformed frame).
var ErrProtocol = errors.New("remotecommand: protocol error")

const headerSize = 5

// WriteFrame writes one frame. Payloads over MaxPayload are refused:
// FrameWriter splits them.
func WriteFrame(w io.Writer, id StreamID, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %s frame of %d bytes exceeds %d", ErrProtocol, id, len(payload), MaxPayload)
	}
	buf := make([]byte, headerSize+len(payload))
	buf[0] = byte(id)
	binary.BigEndian.PutUint32(buf[1:headerSize], uint32(len(payload)))
	copy(buf[headerSize:], payload)
	_, err := w.Write(buf)
	return err
}

// FrameReader reads frames from a connection.
type FrameReader struct {
	r   io.Reader
	buf []byte
}

// NewFrameReader returns a FrameReader over r.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r} }

// Next reads one frame. Its payload is valid until the next call. A clean
// end of the connection before a frame is io.EOF; within one,
// io.ErrUnexpectedEOF.
func (f *FrameReader) Next() (StreamID, []byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: %s frame of %d bytes exceeds %d", ErrProtocol, StreamID(h[0]), n, MaxPayload)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, max(n, 4096))
	}
	p := f.buf[:n]
	if _, err := io.ReadFull(f.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return StreamID(h[0]), p, nil
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Width, Height uint16
}

// EncodeResize is the payload of a Resize frame.
func EncodeResize(s TermSize) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint16(b, s.Width)
	binary.BigEndian.PutUint16(b[2:], s.Height)
	return b
}

// DecodeResize parses a Resize payload.
func DecodeResize(p []byte) (TermSize, error) {
	if len(p) != 4 {
		return TermSize{}, fmt.Errorf("%w: resize payload of %d bytes, want 4", ErrProtocol, len(p))
	}
	return TermSize{Width: binary.BigEndian.Uint16(p), Height: binary.BigEndian.Uint16(p[2:])}, nil
}

// ExitStatus is how a remote command ended. Message is set when it could
// not run at all (no such executable, container not running); Code is then
// ExitCannotRun.
type ExitStatus struct {
	Code    int
	Message string
}

// ExitCannotRun is the exit code reported for a command that could not be
// started (a shell's "found but cannot execute"; kubectl shows the same
// for containerd's exec failures).
const ExitCannotRun = 126

// EncodeExit is the payload of an Exit frame (a message longer than fits
// is cut).
func EncodeExit(s ExitStatus) []byte {
	msg := s.Message
	if len(msg) > MaxPayload-4 {
		msg = msg[:MaxPayload-4]
	}
	b := make([]byte, 4+len(msg))
	binary.BigEndian.PutUint32(b, uint32(int32(s.Code)))
	copy(b[4:], msg)
	return b
}

// DecodeExit parses an Exit payload.
func DecodeExit(p []byte) (ExitStatus, error) {
	if len(p) < 4 {
		return ExitStatus{}, fmt.Errorf("%w: exit payload of %d bytes, want at least 4", ErrProtocol, len(p))
	}
	return ExitStatus{Code: int(int32(binary.BigEndian.Uint32(p))), Message: string(p[4:])}, nil
}

// FrameWriter sends frames on a connection shared by several streams:
// each frame is written whole, under a lock.
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameWriter returns a FrameWriter over w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// Send writes one frame of at most MaxPayload bytes.
func (f *FrameWriter) Send(id StreamID, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return WriteFrame(f.w, id, payload)
}

// Stream returns an io.Writer that sends what is written to it as frames
// of stream id, split at MaxPayload. An empty write sends nothing (an
// empty frame means nothing on the data streams).
func (f *FrameWriter) Stream(id StreamID) io.Writer { return streamWriter{f: f, id: id} }

type streamWriter struct {
	f  *FrameWriter
	id StreamID
}

func (s streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxPayload)]
		if err := s.f.Send(s.id, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}
