package imagebuild

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"
)

// DefaultBusybox is where Debian's busybox-static puts its binary.
const DefaultBusybox = "/bin/busybox"

// ErrNoBusybox means no static busybox is on this machine
// (apt-get install -y busybox-static).
var ErrNoBusybox = errors.New("no static busybox (apt-get install -y busybox-static)")

// BusyboxFiles returns a minimal root filesystem around the static busybox
// binary at src (DefaultBusybox if empty): /bin/busybox, a symlink to it
// for every applet where busybox itself installs it (/bin/sh, /bin/sleep,
// /usr/bin/wget, ...), /etc/passwd and /etc/group with root, and /tmp.
// A missing or dynamically linked binary fails with ErrNoBusybox.
func BusyboxFiles(src string) ([]File, error) {
	if src == "" {
		src = DefaultBusybox
	}
	if err := checkStatic(src); err != nil {
		return nil, err
	}
	out, err := exec.Command(src, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %s --list-full: %w", src, err)
	}
	files := []File{
		{Path: "/bin/busybox", Mode: 0o755, SourcePath: src},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
	}
	seen := map[string]bool{"/bin/busybox": true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := path.Clean("/" + strings.TrimSpace(sc.Text()))
		if p == "/" || seen[p] {
			continue
		}
		seen[p] = true
		files = append(files, File{Path: p, Mode: fs.ModeSymlink | 0o777, Link: "/bin/busybox"})
	}
	if len(seen) < 2 {
		return nil, fmt.Errorf("imagebuild: %s --list-full listed no applets", src)
	}
	return files, nil
}

// checkStatic fails unless src is a statically linked ELF executable: a
// dynamic one would not run in an image without its libc.
func checkStatic(src string) error {
	f, err := elf.Open(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("imagebuild: %s: %w", src, ErrNoBusybox)
		}
		return fmt.Errorf("imagebuild: %s: %w", src, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("imagebuild: %s is dynamically linked: %w", src, ErrNoBusybox)
		}
	}
	return nil
}

// HaveBusybox reports whether DefaultBusybox is a static busybox.
func HaveBusybox() bool {
	_, err := os.Stat(DefaultBusybox)
	return err == nil && checkStatic(DefaultBusybox) == nil
}

// Busybox writes a busybox image named name to w: the files of
// BusyboxFiles(DefaultBusybox), running /bin/sh by default.
func Busybox(w io.Writer, name string) (Info, error) {
	files, err := BusyboxFiles("")
	if err != nil {
		return Info{}, err
	}
	return Build(w, Spec{Name: name, Files: files, Cmd: []string{"/bin/sh"}})
}
