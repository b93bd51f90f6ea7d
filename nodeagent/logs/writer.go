package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// MaxLineSize is the longest text one record carries; longer lines are
// split into partial records (containerd's CRI plugin uses the same 16 KiB).
const MaxLineSize = 16 * 1024

// Defaults of WriterOptions.
const (
	DefaultMaxSize  int64 = 10 << 20
	DefaultMaxFiles       = 5
)

// Stream names one of a container's output streams.
type Stream string

// The streams a container writes.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Tag says whether a record ends its line (F) or is followed by more of it
// (P).
type Tag string

// Record tags.
const (
	TagFull    Tag = "F"
	TagPartial Tag = "P"
)

// WriterOptions configure a Writer. Zero fields take the defaults.
type WriterOptions struct {
	// MaxSize is the size in bytes past which the file is rotated
	// (default 10 MiB). A record is never split across files, so a file
	// may exceed it by one record.
	MaxSize int64
	// MaxFiles is how many files are kept, the live one included
	// (default 5): path, path.1 … path.<MaxFiles-1>. With 1 the file is
	// truncated instead of rotated.
	MaxFiles int
	// Now stamps records (default time.Now); tests inject a clock.
	Now func() time.Time
}

// ErrClosed is returned by writes to a closed Writer.
var ErrClosed = errors.New("logs: writer closed")

// Writer writes a container's output as CRI log records to one file,
// rotating it by size. It is safe for concurrent use: the stdout and
// stderr writers may be written from different goroutines, and each record
// reaches the file in one write, whole.
type Writer struct {
	path string
	opts WriterOptions

	mu     sync.Mutex // guards everything below and the file's content
	f      *os.File
	size   int64
	closed bool
	rec    []byte // scratch record buffer
	out    map[Stream]*streamWriter
}

// NewWriter opens (creating it and its directory if needed) the log file
// at path for appending.
func NewWriter(path string, opts WriterOptions) (*Writer, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("logs: create directory of %s: %w", path, err)
	}
	w := &Writer{path: path, opts: opts}
	if err := w.open(); err != nil {
		return nil, err
	}
	w.out = map[Stream]*streamWriter{
		Stdout: {w: w, stream: Stdout},
		Stderr: {w: w, stream: Stderr},
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("logs: open %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logs: stat %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Path is the live log file's path.
func (w *Writer) Path() string { return w.path }

// Stream returns the writer for one of the container's streams (Stdout or
// Stderr). Bytes written to it become records once a newline ends a line
// or MaxLineSize bytes are pending; Close writes what is left. Writes to
// an unknown stream fail.
func (w *Writer) Stream(s Stream) io.Writer {
	if sw, ok := w.out[s]; ok {
		return sw
	}
	return badStream(s)
}

type badStream Stream

func (b badStream) Write([]byte) (int, error) {
	return 0, fmt.Errorf("logs: unknown stream %q (want stdout or stderr)", string(b))
}

// Close writes the streams' unterminated output as partial records and
// closes the file. Later writes fail with ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var errs []error
	for _, s := range []Stream{Stdout, Stderr} {
		sw := w.out[s]
		if len(sw.buf) > 0 {
			errs = append(errs, w.writeRecordLocked(s, TagPartial, sw.buf))
			sw.buf = nil
		}
	}
	w.closed = true
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("logs: close %s: %w", w.path, err))
	}
	return errors.Join(errs...)
}

// writeRecordLocked writes one record, rotating first when it would take
// the file past MaxSize. Called with w.mu held.
func (w *Writer) writeRecordLocked(s Stream, tag Tag, text []byte) error {
	if w.closed {
		return ErrClosed
	}
	r := w.opts.Now().UTC().AppendFormat(w.rec[:0], time.RFC3339Nano)
	r = append(r, ' ')
	r = append(r, s...)
	r = append(r, ' ')
	r = append(r, tag...)
	r = append(r, ' ')
	r = append(r, text...)
	r = append(r, '\n')
	w.rec = r
	if w.size > 0 && w.size+int64(len(r)) > w.opts.MaxSize {
		if err := w.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(r)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("logs: write %s: %w", w.path, err)
	}
	return nil
}

// rotateLocked shifts path.N-1 → path.N … path → path.1 and opens a new
// path, or truncates path when only one file is kept.
func (w *Writer) rotateLocked() error {
	if w.opts.MaxFiles == 1 {
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("logs: truncate %s: %w", w.path, err)
		}
		w.size = 0
		return nil
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("logs: close %s for rotation: %w", w.path, err)
	}
	for i := w.opts.MaxFiles - 1; i >= 1; i-- {
		from := rotatedName(w.path, i-1)
		if err := os.Rename(from, rotatedName(w.path, i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Keep writing somewhere: reopen the live file.
			if oerr := w.open(); oerr != nil {
				w.closed = true
				return errors.Join(fmt.Errorf("logs: rotate %s: %w", from, err), oerr)
			}
			return fmt.Errorf("logs: rotate %s: %w", from, err)
		}
	}
	if err := w.open(); err != nil {
		w.closed = true
		return err
	}
	return nil
}

// rotatedName is path for 0 and path.i otherwise.
func rotatedName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// streamWriter buffers one stream's unterminated line. Its buffer is
// guarded by the Writer's mutex, so a stream's records keep their order
// and never interleave with the other stream's within a record.
type streamWriter struct {
	w      *Writer
	stream Stream
	buf    []byte
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	w := sw.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	data := p
	if len(sw.buf) > 0 {
		sw.buf = append(sw.buf, p...)
		data = sw.buf
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		for len(line) > MaxLineSize {
			if err := w.writeRecordLocked(sw.stream, TagPartial, line[:MaxLineSize]); err != nil {
				return 0, err
			}
			line = line[MaxLineSize:]
		}
		if err := w.writeRecordLocked(sw.stream, TagFull, line); err != nil {
			return 0, err
		}
		data = data[i+1:]
	}
	for len(data) > MaxLineSize {
		if err := w.writeRecordLocked(sw.stream, TagPartial, data[:MaxLineSize]); err != nil {
			return 0, err
		}
		data = data[MaxLineSize:]
	}
	// Keep the rest (append moves overlapping bytes correctly when data
	// is the tail of sw.buf).
	sw.buf = append(sw.buf[:0], data...)
	return len(p), nil
}
