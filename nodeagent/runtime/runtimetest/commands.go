package runtimetest

import "fmt"

// The commands the suite's containers run. Each needs only busybox (sh,
// sleep, echo, cat); Describe says what each does, for runtimes that
// simulate processes instead of running them (the fake).
var (
	// CmdSleep runs until it is stopped (and, as PID 1 without a handler,
	// ignores SIGTERM).
	CmdSleep = []string{"sleep", "3600"}
	// CmdLog writes "out" to stdout and "err" to stderr, then exits 0.
	CmdLog = []string{"sh", "-c", "echo out; echo err >&2"}
	// CmdTrapTerm runs until SIGTERM, then exits 0 at once.
	CmdTrapTerm = []string{"sh", "-c", `trap "exit 0" TERM; while true; do sleep 0.1; done`}
	// CmdOOM allocates memory until the kernel kills it (a string that
	// doubles: 64 MiB after 26 rounds).
	CmdOOM = []string{"sh", "-c", "x=a; while true; do x=$x$x; done"}
	// CmdNotFound names an executable that does not exist.
	CmdNotFound = []string{"/no-such-executable"}
)

// CmdExit exits at once with code.
func CmdExit(code int) []string { return []string{"sh", "-c", fmt.Sprintf("exit %d", code)} }

// Behaviour is what one of the suite's commands does.
type Behaviour struct {
	Stdout, Stderr []string // lines written, at once
	ExitCode       *int     // exits by itself with this code; nil: runs until stopped
	OOM            bool     // exceeds any memory limit at once
	NotFound       bool     // cannot start: its executable does not exist
	HandlesTERM    bool     // exits 0 on SIGTERM (else only SIGKILL ends it)
}

// Describe says what argv (command and args joined) does, for the
// suite's commands; ok is false for any other.
func Describe(argv []string) (b Behaviour, ok bool) {
	eq := func(cmd []string) bool {
		if len(cmd) != len(argv) {
			return false
		}
		for i := range cmd {
			if cmd[i] != argv[i] {
				return false
			}
		}
		return true
	}
	zero := 0
	switch {
	case eq(CmdSleep):
		return Behaviour{}, true
	case eq(CmdLog):
		return Behaviour{Stdout: []string{"out"}, Stderr: []string{"err"}, ExitCode: &zero}, true
	case eq(CmdTrapTerm):
		return Behaviour{HandlesTERM: true}, true
	case eq(CmdOOM):
		return Behaviour{OOM: true}, true
	case eq(CmdNotFound):
		return Behaviour{NotFound: true}, true
	}
	for code := range 256 {
		if eq(CmdExit(code)) {
			return Behaviour{ExitCode: &code}, true
		}
	}
	return Behaviour{}, false
}
