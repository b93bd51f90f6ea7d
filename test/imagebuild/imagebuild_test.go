package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is a file as read back from an image's flattened filesystem.
type entry struct {
	typ  byte
	mode int64
	link string
	data string
}

// readFS flattens img into its files, keyed by path without a leading /.
func readFS(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		out[strings.TrimSuffix(hdr.Name, "/")] = entry{typ: hdr.Typeflag, mode: hdr.Mode, link: hdr.Linkname, data: string(data)}
	}
}

func testSpec(t *testing.T) Spec {
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho tool\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Name: "localhost/skiff/test:v1",
		Files: []File{
			{Path: "/app/server", Mode: 0o755, Data: []byte("ELF pretend")},
			{Path: "/etc/app/config.json", Data: []byte(`{"a":1}`)},
			{Path: "/usr/local/bin/tool", SourcePath: src},
			{Path: "/usr/local/bin/t", Mode: fs.ModeSymlink, Link: "tool"},
			{Path: "/data", Mode: fs.ModeDir | 0o700},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		},
		Entrypoint: []string{"/app/server"},
		Cmd:        []string{"serve", "--port=8080"},
		Env:        []string{"MODE=test"},
		WorkingDir: "/app",
		Labels:     map[string]string{"org.skiff.example": "test"},
	}
}

func buildFile(t *testing.T, s Spec) (string, Info) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out", "image.tar")
	info, err := BuildFile(p, s)
	if err != nil {
		t.Fatalf("BuildFile: %v", err)
	}
	return p, info
}

// checkImage checks img against testSpec. The docker-save reader
// synthesises its own manifest (docker media types), so only an image read
// from the OCI layout has the manifest digest of Info.
func checkImage(t *testing.T, img v1.Image, info Info, sameManifest bool) {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if sameManifest && d.String() != info.Digest {
		t.Errorf("manifest digest %s, Info says %s", d, info.Digest)
	}
	cn, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if cn.String() != info.ConfigDigest {
		t.Errorf("config digest %s, Info says %s", cn, info.ConfigDigest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/app/server"}) || !slices.Equal(c.Cmd, []string{"serve", "--port=8080"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if !slices.Equal(c.Env, []string{DefaultPath, "MODE=test"}) {
		t.Errorf("env %q, want PATH then MODE", c.Env)
	}
	if c.WorkingDir != "/app" || c.Labels["org.skiff.example"] != "test" {
		t.Errorf("workingDir %q labels %v", c.WorkingDir, c.Labels)
	}
	if len(cf.RootFS.DiffIDs) != 1 || len(cf.History) != 1 {
		t.Errorf("rootfs %d diff IDs, %d history entries; want 1 and 1", len(cf.RootFS.DiffIDs), len(cf.History))
	}

	files := readFS(t, img)
	want := map[string]entry{
		"app":                 {typ: tar.TypeDir, mode: 0o755},
		"app/server":          {typ: tar.TypeReg, mode: 0o755, data: "ELF pretend"},
		"etc":                 {typ: tar.TypeDir, mode: 0o755},
		"etc/app":             {typ: tar.TypeDir, mode: 0o755},
		"etc/app/config.json": {typ: tar.TypeReg, mode: 0o644, data: `{"a":1}`},
		"usr":                 {typ: tar.TypeDir, mode: 0o755},
		"usr/local":           {typ: tar.TypeDir, mode: 0o755},
		"usr/local/bin":       {typ: tar.TypeDir, mode: 0o755},
		"usr/local/bin/tool":  {typ: tar.TypeReg, mode: 0o750, data: "#!/bin/sh\necho tool\n"},
		"usr/local/bin/t":     {typ: tar.TypeSymlink, mode: 0o777, link: "tool"},
		"data":                {typ: tar.TypeDir, mode: 0o700},
		"tmp":                 {typ: tar.TypeDir, mode: 0o1777},
	}
	for p, w := range want {
		g, ok := files[p]
		if !ok {
			t.Errorf("%s missing from the image", p)
			continue
		}
		if g != w {
			t.Errorf("%s = %+v, want %+v", p, g, w)
		}
	}
	for p := range files {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s in the image", p)
		}
	}
}

// The docker-save half: go-containerregistry's tarball reader (what
// `docker load` reads) finds the image by its tag.
func TestBuildReadBackDockerManifest(t *testing.T) {
	p, info := buildFile(t, testSpec(t))
	if info.Name != "localhost/skiff/test:v1" {
		t.Errorf("Info.Name %q", info.Name)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != info.Size {
		t.Errorf("file is %d bytes, Info.Size %d", st.Size(), info.Size)
	}
	tag, err := name.NewTag(info.Name)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath: %v", err)
	}
	checkImage(t, img, info, false)
}

// The OCI layout half: index.json names the image the way containerd's
// exporter does, and its manifest is the image.
func TestBuildReadBackOCILayout(t *testing.T) {
	p, info := buildFile(t, testSpec(t))
	dir := t.TempDir()
	untar(t, p, dir)
	for _, f := range []string{"oci-layout", "index.json", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("archive has no %s: %v", f, err)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("layout.FromPath: %v", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if got := desc.Annotations[AnnotationImageName]; got != "localhost/skiff/test:v1" {
		t.Errorf("%s = %q", AnnotationImageName, got)
	}
	if got := desc.Annotations[AnnotationRefName]; got != "v1" {
		t.Errorf("%s = %q, want the tag", AnnotationRefName, got)
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("platform %+v", desc.Platform)
	}
	img, err := lp.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, info, true)
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q escapes", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("archive entry %q has type %c", hdr.Name, hdr.Typeflag)
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	s := testSpec(t)
	var a, b bytes.Buffer
	ia, err := Build(&a, s)
	if err != nil {
		t.Fatal(err)
	}
	// The same files listed in another order.
	slices.Reverse(s.Files)
	ib, err := Build(&b, s)
	if err != nil {
		t.Fatal(err)
	}
	if ia != ib || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("two builds of one spec differ: %+v vs %+v", ia, ib)
	}
}

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"localhost/skiff/echo:latest", "localhost/skiff/echo:latest"},
		{"localhost/skiff/echo", "localhost/skiff/echo:latest"},
		{"localhost:5000/echo:v2", "localhost:5000/echo:v2"},
		{"busybox", "docker.io/library/busybox:latest"},
		{"docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"},
		{"example.com/team/app:1.0", "example.com/team/app:1.0"},
		{"skiff/echo:dev", "docker.io/skiff/echo:dev"},
	} {
		got, err := NormalizeName(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "UPPER/case:1", "a:b:c", "localhost/echo@sha256:abc"} {
		if got, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestBuildRefusesBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []File
		want  string
	}{
		{"relative path", []File{{Path: "bin/x"}}, "must be absolute"},
		{"root", []File{{Path: "/"}}, "root"},
		{"listed twice", []File{{Path: "/a"}, {Path: "/a/"}}, "twice"},
		{"inside a file", []File{{Path: "/a", Data: []byte("x")}, {Path: "/a/b"}}, "not a directory"},
		{"symlink without target", []File{{Path: "/l", Mode: fs.ModeSymlink}}, "no target"},
		{"data and source", []File{{Path: "/f", Data: []byte("x"), SourcePath: "/etc/hostname"}}, "both"},
		{"missing source", []File{{Path: "/f", SourcePath: "/nonexistent/skiff-test"}}, "no such file"},
		{"source is a directory", []File{{Path: "/f", SourcePath: "/"}}, "not a regular file"},
		{"device", []File{{Path: "/dev/x", Mode: fs.ModeDevice}}, "unsupported type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(io.Discard, Spec{Name: "localhost/x:1", Files: tc.files})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBusybox(t *testing.T) {
	if !HaveBusybox() {
		if os.Getenv("SKIFF_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("%s is not a static busybox and SKIFF_REQUIRE_INTEGRATION=1: %v", DefaultBusybox, ErrNoBusybox)
		}
		t.Skipf("skipping: %s is not a static busybox (apt-get install -y busybox-static)", DefaultBusybox)
	}
	var buf bytes.Buffer
	info, err := Busybox(&buf, "localhost/skiff/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "localhost/skiff/busybox:latest" {
		t.Errorf("name %q", info.Name)
	}
	p := filepath.Join(t.TempDir(), "bb.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(info.Name)
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatal(err)
	}
	files := readFS(t, img)
	bb := files["bin/busybox"]
	want, err := os.ReadFile(DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if bb.typ != tar.TypeReg || bb.mode != 0o755 || bb.data != string(want) {
		t.Errorf("bin/busybox: type %c mode %o, %d bytes (want %d)", bb.typ, bb.mode, len(bb.data), len(want))
	}
	for _, applet := range []string{"bin/sh", "bin/sleep", "bin/cat", "bin/hostname", "usr/bin/wget"} {
		if e := files[applet]; e.typ != tar.TypeSymlink || e.link != "/bin/busybox" {
			t.Errorf("%s = %+v, want a symlink to /bin/busybox", applet, e)
		}
	}
	if e := files["tmp"]; e.typ != tar.TypeDir || e.mode != 0o1777 {
		t.Errorf("tmp = %+v", e)
	}
	if !strings.HasPrefix(files["etc/passwd"].data, "root:x:0:0:") {
		t.Errorf("etc/passwd = %q", files["etc/passwd"].data)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("cmd %q", cf.Config.Cmd)
	}
}

func TestBusyboxFilesRefusesDynamicBinary(t *testing.T) {
	// This test binary is a Go program; whether it is static depends on
	// cgo, so use a binary that is certainly dynamic, when there is one.
	const dyn = "/bin/ls"
	if _, err := os.Stat(dyn); err != nil {
		t.Skipf("skipping: no %s to use as a dynamically linked binary", dyn)
	}
	if _, err := BusyboxFiles(dyn); !errors.Is(err, ErrNoBusybox) {
		t.Errorf("BusyboxFiles(%s): %v, want ErrNoBusybox", dyn, err)
	}
	if _, err := BusyboxFiles("/nonexistent/busybox"); !errors.Is(err, ErrNoBusybox) {
		t.Errorf("BusyboxFiles(missing): %v, want ErrNoBusybox", err)
	}
}
