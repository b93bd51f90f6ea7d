package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage:
  echo [serve] [--http :8080] [--udp :9090] [--name NAME] [--shutdown-delay 0s] [--shutdown-timeout 10s] [--access-log]
  echo fetch URL [-n 10] [-c 1] [--timeout 2s] [--require-test-netns]
  echo udp ADDR [-n 10] [-c 1] [--timeout 1s] [--require-test-netns]
  echo hold URL [--for 10s] [--interval 100ms] [--timeout 2s] [--require-test-netns]
`

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a request failed, or the server could not run
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

// run runs one command; ctx ends with SIGTERM or SIGINT.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCommand(ctx, args, stdout)
	case "fetch":
		err = fetchCommand(ctx, args, stdout, stderr, protoHTTP)
	case "udp":
		err = fetchCommand(ctx, args, stdout, stderr, protoUDP)
	case "hold":
		err = holdCommand(ctx, args, stdout)
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "echo: %v\n%s", err, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "echo %s: %v\n", cmd, err)
		return exitFailed
	}
}

// parse parses flags that may come before or after the positional
// arguments ("echo fetch URL -n 5") and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
