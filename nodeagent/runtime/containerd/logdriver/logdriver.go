package logdriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"sync"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"

	"github.com/skiffhq/skiff/nodeagent/logs"
)

// Subcommand is the first argument the driver binary is run with (the
// hidden `skiff log-driver`), followed by one argument: Options.Encode().
const Subcommand = "log-driver"

// Options say where and how one container's log is written.
type Options struct {
	Path     string // the log file (absolute)
	MaxSize  int64  // rotate past this many bytes (0: logs' default)
	MaxFiles int    // files kept, the live one included (0: logs' default)
}

// Encode spells the options as the single argument the driver takes.
func (o Options) Encode() string {
	v := url.Values{}
	v.Set("path", o.Path)
	if o.MaxSize > 0 {
		v.Set("max-size", strconv.FormatInt(o.MaxSize, 10))
	}
	if o.MaxFiles > 0 {
		v.Set("max-files", strconv.Itoa(o.MaxFiles))
	}
	return v.Encode()
}

// ParseOptions reads what Encode wrote.
func ParseOptions(s string) (Options, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return Options{}, fmt.Errorf("logdriver: options %q: %w", s, err)
	}
	o := Options{Path: v.Get("path")}
	if o.Path == "" {
		return o, fmt.Errorf("logdriver: options %q: no path", s)
	}
	if s := v.Get("max-size"); s != "" {
		if o.MaxSize, err = strconv.ParseInt(s, 10, 64); err != nil {
			return o, fmt.Errorf("logdriver: max-size %q: %w", s, err)
		}
	}
	if s := v.Get("max-files"); s != "" {
		if o.MaxFiles, err = strconv.Atoi(s); err != nil {
			return o, fmt.Errorf("logdriver: max-files %q: %w", s, err)
		}
	}
	return o, nil
}

// Main runs the driver and exits the process; args are the arguments
// after Subcommand (the hidden command passes them as they came). It never
// returns.
func Main(args []string) {
	// The shim may hand the arguments in any order; ours are one key and
	// its value, so the value is the one that is not the key.
	var opts Options
	var err error
	switch {
	case len(args) == 1:
		opts, err = ParseOptions(args[0])
	default:
		err = fmt.Errorf("logdriver: want one argument (the encoded options), got %q", args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		return Copy(ctx, opts, cfg.Stdout, cfg.Stderr, ready)
	})
}

// Copy writes stdout and stderr to the log file until both end (the
// container's streams close when its process and the shim's copy end).
// ready is called once the file is open, before anything is read: the
// shim starts the container only then. Cancelling ctx (SIGTERM from the
// shim) stops copying and flushes what was read.
func Copy(ctx context.Context, opts Options, stdout, stderr io.Reader, ready func() error) error {
	w, err := logs.NewWriter(opts.Path, logs.WriterOptions{MaxSize: opts.MaxSize, MaxFiles: opts.MaxFiles})
	if err != nil {
		return err
	}
	if err := ready(); err != nil {
		w.Close()
		return fmt.Errorf("logdriver: signal ready: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		r      io.Reader
		stream logs.Stream
	}{{stdout, logs.Stdout}, {stderr, logs.Stderr}} {
		if s.r == nil {
			continue
		}
		wg.Go(func() {
			_, err := io.Copy(w.Stream(s.stream), s.r)
			if errors.Is(err, os.ErrClosed) {
				err = nil
			}
			errs[i] = err
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Unblock the copies: what the pipes still hold is lost, as with
		// any logging driver that is told to stop.
		for _, r := range []io.Reader{stdout, stderr} {
			if c, ok := r.(io.Closer); ok {
				c.Close()
			}
		}
		<-done
	}
	return errors.Join(errs[0], errs[1], w.Close())
}
