package bpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate recompiles the C programs with the //go:generate
// lines of gen.go (into a temporary directory) and checks that the
// committed bpf2go output is what they produce: a C change without
// `make generate` fails here. Needs clang-14 (test/deps.sh installs it).
func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		needIntegration(t, "clang-14 not found: cannot check the generated eBPF objects (test/deps.sh installs it)")
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var files []string
	for _, line := range strings.Split(string(src), "\n") {
		cmdline, ok := strings.CutPrefix(line, "//go:generate go tool bpf2go ")
		if !ok {
			continue
		}
		args, err := splitQuoted(cmdline)
		if err != nil {
			t.Fatalf("gen.go: %v", err)
		}
		// bpf2go -output-dir DIR [flags] stem source -- cflags
		args = append([]string{"tool", "bpf2go", "-output-dir", out, "-go-package", "bpf"}, args...)
		cmd := exec.Command("go", args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		stem := args[len(args)-1]
		for i, a := range args {
			if a == "--" {
				stem = args[i-2]
			}
		}
		files = append(files, stem+"_bpfel.go", stem+"_bpfel.o")
	}
	if len(files) == 0 {
		t.Fatal("no //go:generate bpf2go lines in gen.go")
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("committed %s: %v", f, err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s differs from what gen.go produces: run `make generate` and commit the result", f)
		}
	}
}

// splitQuoted splits a command line at spaces, keeping "double quoted"
// arguments whole.
func splitQuoted(s string) ([]string, error) {
	var (
		args   []string
		cur    strings.Builder
		quoted bool
		inArg  bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			inArg = true
		case r == ' ' && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quoted {
		return nil, os.ErrInvalid
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
