package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// ReadOptions select and shape what Read writes. They mirror kubectl
// logs' flags.
type ReadOptions struct {
	// Follow keeps reading as the file grows and rotates, until ctx ends
	// or Alive reports false.
	Follow bool
	// Tail is how many of the last lines to write before following: -1
	// for all of them, 0 for none (kubectl's --tail).
	Tail int
	// Timestamps prefixes each line with its record's timestamp and a
	// space.
	Timestamps bool
	// Streams are the streams to write (empty: stdout and stderr).
	Streams []Stream
	// SinceTime skips lines stamped before it (zero: none skipped).
	SinceTime time.Time
	// PollInterval is how often a follower looks for more output when it
	// has read everything (default 100ms).
	PollInterval time.Duration
	// Alive, when set, is asked by a follower each time it finds nothing
	// new; once it reports false (the container exited), Read writes what
	// is left and returns nil. Nil: follow until ctx ends.
	Alive func() bool
}

// DefaultPollInterval is ReadOptions.PollInterval's default.
const DefaultPollInterval = 100 * time.Millisecond

// maxJoinedLine caps a line joined from partial records: a process that
// writes megabytes without a newline gets them as several lines rather
// than held in memory.
const maxJoinedLine = 1 << 20

// ErrNoLog means the log file does not exist (the container has not
// written anything yet, or its logs were removed).
var ErrNoLog = errors.New("logs: no log file")

// Read writes the lines of the log file at path and of its rotated
// predecessors (path.N … path.1) to out: each record's text, partial
// records joined into their line, one line per "\n". Output that ended
// without a newline (a stream closed mid-line) gets one. Lines that do not
// parse as records are skipped.
//
// Without Follow, Read returns once it has written everything. With
// Follow it keeps writing new lines, across rotations, until ctx ends (it
// then returns ctx's error) or opts.Alive reports false (nil). If out has
// a Flush method (an http.ResponseWriter), Read calls it whenever it has
// caught up, so a follower sees each line as it comes.
//
// A path with no log file at all fails with an error wrapping ErrNoLog.
func Read(ctx context.Context, path string, opts ReadOptions, out io.Writer) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	bw := &flushWriter{out: out}
	bw.buf = make([]byte, 0, 64<<10)
	d := newDecoder(opts, bw)
	if opts.Tail >= 0 {
		d.ring = &ring{max: opts.Tail}
	}

	files, err := openLogFiles(path)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: %s", ErrNoLog, path)
	}
	cur := files[len(files)-1]
	defer func() { cur.close() }()
	for _, c := range files[:len(files)-1] {
		err := c.drain(d)
		c.close()
		if err != nil {
			return err
		}
	}
	if err := cur.drain(d); err != nil {
		return err
	}
	if !opts.Follow {
		if err := d.flushPartials(); err != nil {
			return err
		}
	}
	if d.ring != nil {
		if err := d.ring.writeTo(bw, opts.Timestamps); err != nil {
			return err
		}
		d.ring = nil
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if !opts.Follow {
		return nil
	}

	t := time.NewTicker(opts.PollInterval)
	defer t.Stop()
	for {
		next, err := follow(path, cur, d)
		if next != nil {
			cur = next
		}
		if err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if opts.Alive != nil && !opts.Alive() {
			// The container is gone: read what it wrote last.
			next, err := follow(path, cur, d)
			if next != nil {
				cur = next
			}
			if err != nil {
				return err
			}
			if err := d.flushPartials(); err != nil {
				return err
			}
			return bw.Flush()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// follow reads what was appended to cur and, when path now names another
// file (it was rotated), every file written after cur. It returns the file
// to follow next (nil: still cur).
func follow(path string, cur *cursor, d *decoder) (*cursor, error) {
	if err := cur.drain(d); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil || os.SameFile(st, cur.info) {
		// Same file, or mid-rotation (path not created yet): look again
		// at the next poll.
		return nil, nil
	}
	// Rotated. Whatever was written before the rename is in cur: drain it
	// again, then read its successors, oldest first.
	if err := cur.drain(d); err != nil {
		return nil, err
	}
	files, err := openLogFiles(path)
	if err != nil {
		return nil, err
	}
	succ := files
	for i, c := range files {
		if os.SameFile(c.info, cur.info) {
			succ = files[i+1:]
			for _, old := range files[:i+1] {
				old.close()
			}
			break
		}
	}
	if len(succ) == 0 {
		return nil, nil
	}
	for _, c := range succ[:len(succ)-1] {
		err := c.drain(d)
		c.close()
		if err != nil {
			for _, rest := range succ {
				rest.close()
			}
			return nil, err
		}
	}
	cur.close()
	last := succ[len(succ)-1]
	return last, last.drain(d)
}

// openLogFiles opens path's rotated files and path itself, oldest first.
//
// A rotation that runs while it opens them would shift the names under
// it; the first step of any rotation moves the oldest file's name, so a
// snapshot whose oldest name still names the file opened (and with no
// older file appeared) was taken between two rotations. It retries until
// it gets one.
func openLogFiles(path string) ([]*cursor, error) {
	const attempts = 50
	for try := 1; ; try++ {
		files, stable, err := openLogFilesOnce(path)
		if err != nil || stable || try == attempts {
			return files, err
		}
		closeAll(files)
	}
}

func openLogFilesOnce(path string) (files []*cursor, stable bool, err error) {
	// A rotation renames path.(i-1) to path.i from the oldest down, so
	// while it runs one index is missing between present ones: look one
	// index past the first gap, and call a snapshot with a gap unstable
	// (one taken there could skip the file in flight).
	var names []string
	stable = true
	for i, misses := 1, 0; misses < 2; i++ {
		n := rotatedName(path, i)
		if _, err := os.Lstat(n); err != nil {
			misses++
			continue
		}
		if misses > 0 {
			stable = false
		}
		names = append(names, n)
	}
	slices.Reverse(names)
	names = append(names, path)
	for _, n := range names {
		f, err := os.Open(n)
		if errors.Is(err, os.ErrNotExist) {
			stable = false // rotated away meanwhile
			continue
		}
		if err != nil {
			closeAll(files)
			return nil, false, fmt.Errorf("logs: open %s: %w", n, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			closeAll(files)
			return nil, false, fmt.Errorf("logs: stat %s: %w", n, err)
		}
		if slices.ContainsFunc(files, func(c *cursor) bool { return os.SameFile(c.info, st) }) {
			stable = false // moved to the next name while we listed
			f.Close()
			continue
		}
		files = append(files, &cursor{f: f, info: st})
	}
	if !stable || len(files) == 0 {
		return files, false, nil
	}
	if st, err := os.Stat(names[0]); err != nil || !os.SameFile(st, files[0].info) {
		return files, false, nil
	}
	if _, err := os.Lstat(rotatedName(path, len(names))); err == nil {
		return files, false, nil
	}
	return files, true, nil
}

func closeAll(cs []*cursor) {
	for _, c := range cs {
		c.close()
	}
}

// cursor reads one log file's records as they are appended.
type cursor struct {
	f    *os.File
	info os.FileInfo
	off  int64
	rest []byte // an incomplete record at the end of what was read
	buf  []byte
}

func (c *cursor) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// drain decodes every complete record from the cursor to the end of the
// file. A file truncated under it is read again from its start.
func (c *cursor) drain(d *decoder) error {
	if st, err := c.f.Stat(); err == nil && st.Size() < c.off {
		if _, err := c.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("logs: seek %s: %w", c.f.Name(), err)
		}
		c.off, c.rest = 0, c.rest[:0]
	}
	if c.buf == nil {
		c.buf = make([]byte, 64<<10)
	}
	for {
		n, err := c.f.Read(c.buf)
		c.off += int64(n)
		if n > 0 {
			data := c.buf[:n]
			if len(c.rest) > 0 {
				c.rest = append(c.rest, data...)
				data = c.rest
			}
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				if err := d.record(data[:i]); err != nil {
					return err
				}
				data = data[i+1:]
			}
			if len(data) > maxJoinedLine {
				// Not our format: take it as a record anyway.
				if err := d.record(data); err != nil {
					return err
				}
				data = nil
			}
			c.rest = append(c.rest[:0], data...)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("logs: read %s: %w", c.f.Name(), err)
		}
	}
}

// record is one parsed log record; its slices alias the read buffer.
type record struct {
	ts     []byte
	stream Stream
	tag    Tag
	text   []byte
}

// parseRecord parses "<ts> <stream> <tag> <text>" (text may be empty, and
// its separating space absent then).
func parseRecord(b []byte) (record, error) {
	var r record
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return r, errors.New("no timestamp")
	}
	r.ts, b = b[:i], b[i+1:]
	i = bytes.IndexByte(b, ' ')
	if i <= 0 {
		return r, errors.New("no stream")
	}
	r.stream, b = Stream(b[:i]), b[i+1:]
	if r.stream != Stdout && r.stream != Stderr {
		return r, fmt.Errorf("unknown stream %q", r.stream)
	}
	if len(b) == 0 || (b[0] != 'F' && b[0] != 'P') || (len(b) > 1 && b[1] != ' ') {
		return r, errors.New("no F or P tag")
	}
	r.tag = Tag(b[:1])
	if len(b) > 1 {
		r.text = b[2:]
	}
	return r, nil
}

// line is a decoded line: its first record's timestamp and its text.
type line struct {
	ts   []byte
	text []byte
}

// decoder joins partial records and filters lines.
type decoder struct {
	opts    ReadOptions
	streams [2]bool // stdout, stderr wanted
	out     *flushWriter
	ring    *ring // non-nil: lines go to the tail ring instead of out
	pending [2]*line
	scratch []byte
}

func newDecoder(opts ReadOptions, out *flushWriter) *decoder {
	d := &decoder{opts: opts, out: out}
	if len(opts.Streams) == 0 {
		d.streams = [2]bool{true, true}
	}
	for _, s := range opts.Streams {
		switch s {
		case Stdout:
			d.streams[0] = true
		case Stderr:
			d.streams[1] = true
		}
	}
	return d
}

func streamIndex(s Stream) int {
	if s == Stderr {
		return 1
	}
	return 0
}

// record takes one record (without its newline).
func (d *decoder) record(b []byte) error {
	r, err := parseRecord(b)
	if err != nil {
		return nil // not a record: skipped, as the kubelet does
	}
	si := streamIndex(r.stream)
	if !d.streams[si] {
		return nil
	}
	p := d.pending[si]
	if r.tag == TagPartial {
		if p == nil {
			p = &line{ts: append([]byte(nil), r.ts...)}
			d.pending[si] = p
		}
		p.text = append(p.text, r.text...)
		if len(p.text) >= maxJoinedLine {
			d.pending[si] = nil
			return d.emit(p.ts, p.text)
		}
		return nil
	}
	if p == nil {
		return d.emit(r.ts, r.text)
	}
	d.pending[si] = nil
	p.text = append(p.text, r.text...)
	return d.emit(p.ts, p.text)
}

// flushPartials emits lines whose final record never came, oldest first.
func (d *decoder) flushPartials() error {
	ps := []*line{d.pending[0], d.pending[1]}
	if ps[0] != nil && ps[1] != nil && string(ps[1].ts) < string(ps[0].ts) {
		ps = []*line{ps[1], ps[0]}
	}
	d.pending = [2]*line{}
	for _, p := range ps {
		if p != nil {
			if err := d.emit(p.ts, p.text); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *decoder) emit(ts, text []byte) error {
	if !d.opts.SinceTime.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, string(ts))
		if err != nil || t.Before(d.opts.SinceTime) {
			return nil
		}
	}
	if d.ring != nil {
		d.ring.add(ts, text, d.opts.Timestamps)
		return nil
	}
	return d.out.writeLine(ts, text, d.opts.Timestamps)
}

// ring keeps the last max lines.
type ring struct {
	max   int
	lines []line
	next  int // where the next line goes once full
}

func (r *ring) add(ts, text []byte, keepTS bool) {
	if r.max == 0 {
		return
	}
	var l *line
	if len(r.lines) < r.max {
		r.lines = append(r.lines, line{})
		l = &r.lines[len(r.lines)-1]
	} else {
		l = &r.lines[r.next]
		r.next = (r.next + 1) % r.max
	}
	l.ts = l.ts[:0]
	if keepTS {
		l.ts = append(l.ts, ts...)
	}
	l.text = append(l.text[:0], text...)
}

func (r *ring) writeTo(w *flushWriter, withTS bool) error {
	for i := range r.lines {
		l := r.lines[(r.next+i)%len(r.lines)]
		if err := w.writeLine(l.ts, l.text, withTS); err != nil {
			return err
		}
	}
	return nil
}

// flushWriter buffers output and flushes it, and out, when asked.
type flushWriter struct {
	out io.Writer
	buf []byte
}

func (w *flushWriter) writeLine(ts, text []byte, withTS bool) error {
	if withTS {
		w.buf = append(w.buf, ts...)
		w.buf = append(w.buf, ' ')
	}
	w.buf = append(w.buf, text...)
	w.buf = append(w.buf, '\n')
	if len(w.buf) >= 64<<10 {
		return w.write()
	}
	return nil
}

func (w *flushWriter) write() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("logs: write output: %w", err)
	}
	return nil
}

// Flush writes what is buffered and flushes out if it can.
func (w *flushWriter) Flush() error {
	if err := w.write(); err != nil {
		return err
	}
	switch f := w.out.(type) {
	case interface{ Flush() error }:
		if err := f.Flush(); err != nil {
			return fmt.Errorf("logs: flush output: %w", err)
		}
	case interface{ Flush() }:
		f.Flush()
	}
	return nil
}
