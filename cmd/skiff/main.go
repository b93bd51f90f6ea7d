// Command skiff is the one binary of skiff: the control-plane server, the
// development cluster and the kubectl-like client. Its commands live in
// package cli; main only stamps the build and runs them.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/skiffhq/skiff/cli"
)

// Set with -ldflags -X by `make build`.
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	root := cli.NewRoot(cli.BuildInfo{Version: version, Commit: commit, Date: date})
	if err := root.Execute(); err != nil {
		// skiff exec passes its command's exit code through.
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		if !errors.Is(err, cli.ErrReported) {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
		}
		os.Exit(1)
	}
}
