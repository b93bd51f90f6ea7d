// Package logdriver is the logging binary containerd's shim runs for each
// container (a "binary://" log URI): it reads the container's stdout and
// stderr from the pipes the shim hands it (fds 3 and 4) and writes them as
// CRI log records to the container's log file, rotating by size
// (nodeagent/logs). It is a child of the shim, not of the agent, so logs
// keep being written while the agent is down or restarting.
//
// The binary is skiff itself: `skiff log-driver <options>` is a hidden
// subcommand that calls Main. The shim passes URI query keys as arguments
// in no fixed order, so everything travels in one key (Subcommand) whose
// value is Options.Encode(); the shim's own environment is not passed on.
//
// logdriver imports logs and containerd's logging helpers only.
package logdriver
