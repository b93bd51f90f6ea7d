package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/client/remotecommand"
)

// ExitCodeError is returned by a command whose exit code is another
// program's (skiff exec passes the remote command's through). It has
// already been reported: main exits with Code without printing it.
type ExitCodeError struct {
	Code int
}

func (e *ExitCodeError) Error() string {
	return fmt.Sprintf("command terminated with exit code %d", e.Code)
}

// ExitCode is the code to exit with.
func (e *ExitCodeError) ExitCode() int { return e.Code }

// Is makes an ExitCodeError an ErrReported.
func (e *ExitCodeError) Is(target error) bool { return target == ErrReported }

func newExecCmd(o *options) *cobra.Command {
	var (
		opts  client.ExecOptions
		useTT bool
	)
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a container of a pod",
		Long: `Run a command in a running container of a pod, on its node, through the API
server. skiff exec exits with the command's exit code; a command that cannot
be started (not found) exits 126 with the runtime's message.

-i sends your stdin to the command (until its end: ^D on a terminal). -t runs
it on a terminal: your terminal is put in raw mode (^C goes to the command, not
to skiff) and follows its window size. Use -it for a shell.`,
		Example: `  # What is in the container's working directory?
  skiff exec web-5d9c7b-x2x4q -- ls -la

  # A shell in container "web" of a pod with several
  skiff exec -it web-5d9c7b-x2x4q -c web -- sh

  # Feed a file to a command
  skiff exec -i web-5d9c7b-x2x4q -- sh -c 'cat > /tmp/config' < config.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0 || dash == 0:
				return errors.New("a pod name is required: skiff exec POD -- COMMAND [ARG...]")
			case len(args) == 1:
				return errors.New("a command is required after the pod name: skiff exec POD -- COMMAND [ARG...]")
			case dash > 1:
				return fmt.Errorf("one pod name before --, got %q", args[:dash])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pod, err := podArg(args[0])
			if err != nil {
				return err
			}
			opts.Command = args[1:]
			stdin := o.in
			inFile, inTerminal := terminalFile(o.in)
			if useTT && !inTerminal {
				fmt.Fprintln(o.errOut, "Unable to use a TTY - input is not a terminal or the right kind of file")
				useTT = false
			}
			opts.TTY = useTT
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if pod, err = resolvePod(ctx, c, o.namespace, pod); err != nil {
				return err
			}
			conn, err := c.OpenExec(ctx, o.namespace, pod, opts)
			if err != nil {
				return err
			}
			streams := remotecommand.Streams{Stdout: o.out, Stderr: o.errOut}
			if opts.Stdin {
				streams.Stdin = stdin
			}
			if opts.TTY {
				restore, err := rawTerminal(inFile)
				if err != nil {
					conn.Close()
					return err
				}
				defer restore()
				resize, stopResize := watchTerminalSize(inFile, o.out)
				defer stopResize()
				streams.Resize = resize
			}
			st, err := remotecommand.Run(ctx, conn, streams)
			if err != nil {
				return fmt.Errorf("exec in %s: %w", pod, err)
			}
			if st.Message != "" {
				fmt.Fprintf(o.errOut, "error: %s\n", st.Message)
			}
			if st.Code != 0 {
				e := &ExitCodeError{Code: st.Code}
				fmt.Fprintln(o.errOut, e.Error())
				return e
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Container, "container", "c", "", "the container to run in (needed when the pod has several)")
	f.BoolVarP(&opts.Stdin, "stdin", "i", false, "send stdin to the command")
	f.BoolVarP(&useTT, "tty", "t", false, "run the command on a terminal")
	return cmd
}

// terminalFile reports whether r is a terminal, and its file.
func terminalFile(r io.Reader) (*os.File, bool) {
	f, ok := r.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

// rawTerminal puts f in raw mode and returns how to restore it.
func rawTerminal(f *os.File) (func(), error) {
	old, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	return func() { _ = term.Restore(int(f.Fd()), old) }, nil
}

// watchTerminalSize sends the terminal's size now and after every
// SIGWINCH, until stop (which waits for its goroutine). It measures out
// when that is a terminal (the window the output goes to), else in.
func watchTerminalSize(in *os.File, out io.Writer) (<-chan remotecommand.TermSize, func()) {
	fd := int(in.Fd())
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd = int(f.Fd())
	}
	sizes := make(chan remotecommand.TermSize, 1)
	send := func() {
		w, h, err := term.GetSize(fd)
		if err != nil || w <= 0 || h <= 0 {
			return
		}
		select {
		case <-sizes: // only the newest matters
		default:
		}
		sizes <- remotecommand.TermSize{Width: uint16(w), Height: uint16(h)}
	}
	send()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-winch:
				send()
			case <-done:
				return
			}
		}
	})
	return sizes, func() {
		signal.Stop(winch)
		close(done)
		wg.Wait()
	}
}
