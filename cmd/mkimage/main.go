package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/skiffhq/skiff/test/imagebuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

// config is what to build.
type config struct {
	Out     string // the archive
	Name    string // the image reference
	Pkg     string // the Go package of the program
	Binary  string // a prebuilt program instead of building Pkg
	Busybox string // auto, yes or no
	Arch    string // GOARCH of the program and the image
	GoTool  string // the go command
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c config
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&c.Out, "out", "bin/images/echo.tar", "archive to write")
	fs.StringVar(&c.Name, "name", "localhost/skiff/echo:latest", "image name")
	fs.StringVar(&c.Pkg, "pkg", "github.com/skiffhq/skiff/examples/echo", "Go package to build as /usr/local/bin/echo")
	fs.StringVar(&c.Binary, "binary", "", "use this static binary instead of building -pkg")
	fs.StringVar(&c.Busybox, "busybox", "auto", "include busybox: auto (if "+imagebuild.DefaultBusybox+" is static), yes or no")
	fs.StringVar(&c.Arch, "arch", runtime.GOARCH, "GOARCH of the image")
	fs.StringVar(&c.GoTool, "go", "go", "go command")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var withBusybox bool
	switch c.Busybox {
	case "auto":
		withBusybox = imagebuild.HaveBusybox()
	case "yes":
		withBusybox = true
	case "no":
	default:
		return fmt.Errorf("-busybox %q: want auto, yes or no", c.Busybox)
	}

	bin := c.Binary
	if bin == "" {
		tmp, err := os.MkdirTemp("", "mkimage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "echo")
		if err := goBuild(ctx, c, bin); err != nil {
			return err
		}
	}

	spec := imagebuild.Spec{
		Name:       c.Name,
		Files:      []imagebuild.File{{Path: "/usr/local/bin/echo", Mode: 0o755, SourcePath: bin}},
		Entrypoint: []string{"/usr/local/bin/echo"},
		Cmd:        []string{"serve"},
		Arch:       c.Arch,
		Labels: map[string]string{
			"org.opencontainers.image.title":  "skiff echo",
			"org.opencontainers.image.source": "https://github.com/skiffhq/skiff/tree/main/examples/echo",
		},
	}
	if withBusybox {
		files, err := imagebuild.BusyboxFiles("")
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, files...)
	} else {
		// Without busybox the image still needs /tmp for Go's os.TempDir.
		spec.Files = append(spec.Files, imagebuild.File{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777})
	}
	info, err := imagebuild.BuildFile(c.Out, spec)
	if err != nil {
		return err
	}
	busybox := "without busybox"
	if withBusybox {
		busybox = "with busybox (/bin/sh)"
	}
	fmt.Fprintf(stdout, "%s: %s %s, %.1f MB, %s\n", c.Out, info.Name, info.Digest, float64(info.Size)/(1<<20), busybox)
	return nil
}

// goBuild builds c.Pkg as a static linux binary at out.
func goBuild(ctx context.Context, c config, out string) error {
	cmd := exec.CommandContext(ctx, c.GoTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, c.Pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+c.Arch)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("go build %s failed (%v)", c.Pkg, err)
		}
		return fmt.Errorf("go build %s: %w", c.Pkg, err)
	}
	return nil
}
