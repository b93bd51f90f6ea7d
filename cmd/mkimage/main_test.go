package main

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiffhq/skiff/test/imagebuild"
)

// TestBuildsTheEchoImage builds the real image (go build of
// examples/echo), reads it back and runs the binary it holds.
func TestBuildsTheEchoImage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("skipping: no go command to build examples/echo: %v", err)
	}
	out := filepath.Join(t.TempDir(), "images", "echo.tar")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-out", out, "-busybox", "no"}, &stdout); err != nil {
		t.Fatalf("mkimage: %v", err)
	}
	if !strings.Contains(stdout.String(), "localhost/skiff/echo:latest") || !strings.Contains(stdout.String(), "without busybox") {
		t.Errorf("output %q", stdout.String())
	}
	files := readImage(t, out, "localhost/skiff/echo:latest", []string{"/usr/local/bin/echo"}, []string{"serve"})
	bin, ok := files["usr/local/bin/echo"]
	if !ok {
		t.Fatalf("no usr/local/bin/echo in %v", keys(files))
	}
	if _, ok := files["tmp"]; !ok {
		t.Error("no /tmp in the image")
	}
	if _, ok := files["bin/sh"]; ok {
		t.Error("busybox included with -busybox no")
	}
	// The binary is the echo program, statically linked.
	p := filepath.Join(t.TempDir(), "echo")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	help, err := exec.Command(p, "help").Output()
	if err != nil || !strings.Contains(string(help), "echo fetch URL") {
		t.Errorf("echo help: %v, %q", err, help)
	}
	if ldd, err := exec.Command("file", p).Output(); err == nil && !strings.Contains(string(ldd), "statically linked") {
		t.Errorf("the binary is not static: %s", ldd)
	}
}

func TestBusyboxIsIncludedOnDemand(t *testing.T) {
	if !imagebuild.HaveBusybox() {
		if os.Getenv("SKIFF_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("no static busybox and SKIFF_REQUIRE_INTEGRATION=1 (apt-get install -y busybox-static)")
		}
		t.Skip("skipping: no static busybox (apt-get install -y busybox-static)")
	}
	// A stand-in binary: this test is about the layout, not the build.
	bin := filepath.Join(t.TempDir(), "echo")
	if err := os.WriteFile(bin, []byte("not really echo"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "echo.tar")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-out", out, "-binary", bin, "-busybox", "yes", "-name", "localhost/skiff/echo:dev"}, &stdout); err != nil {
		t.Fatalf("mkimage: %v", err)
	}
	files := readImage(t, out, "localhost/skiff/echo:dev", []string{"/usr/local/bin/echo"}, []string{"serve"})
	if string(files["usr/local/bin/echo"]) != "not really echo" {
		t.Error("the -binary was not used")
	}
	for _, f := range []string{"bin/busybox", "bin/sh", "bin/sleep"} {
		if _, ok := files[f]; !ok {
			t.Errorf("no %s with -busybox yes", f)
		}
	}
}

func TestRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-busybox", "maybe"}, {"extra"}, {"-nope"}} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("mkimage %q succeeded", args)
		}
	}
}

// readImage reads the archive with go-containerregistry, checks the
// config and returns the files (regular files' content, nil for others).
func readImage(t *testing.T, path, ref string, entrypoint, cmd []string) map[string][]byte {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, entrypoint) || !slices.Equal(cf.Config.Cmd, cmd) {
		t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	files := map[string][]byte{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(hdr.Name, "/")] = data
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
