package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of index.json's manifest descriptor that name the image.
const (
	// AnnotationImageName is containerd's: the full reference, which
	// Client.Import uses as the image's name.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI one: the tag only, as containerd's own
	// exporter writes it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// epoch is every timestamp in an archive, so builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Spec describes an image: one layer made of Files, and the config.
type Spec struct {
	// Name is the image reference, e.g. "localhost/skiff/echo:latest".
	// A name without a registry or tag is normalised the way containerd
	// does it ("busybox" is "docker.io/library/busybox:latest").
	Name string
	// Files are the layer's content. Parent directories that are not
	// listed are created with mode 0755.
	Files []File

	Entrypoint []string
	Cmd        []string
	// Env is "KEY=value" pairs. Without a PATH entry the image gets
	// DefaultPath.
	Env        []string
	WorkingDir string
	// User is the config's user ("" is root).
	User   string
	Labels map[string]string
	// Arch is the image's architecture (GOARCH spelling); empty is the
	// architecture this program was built for. The OS is always linux.
	Arch string
}

// DefaultPath is the PATH of an image whose Spec.Env has none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one entry of an image's filesystem.
type File struct {
	// Path is absolute inside the image ("/bin/sh").
	Path string
	// Mode holds the permission bits and the type: 0 (a regular file),
	// fs.ModeDir or fs.ModeSymlink. Zero permission bits mean 0644 for a
	// regular file read from Data, the source file's bits for one read
	// from SourcePath, 0755 for a directory.
	Mode fs.FileMode
	// Data is a regular file's content, unless SourcePath is set.
	Data []byte
	// SourcePath is a file on this machine to copy (a regular file).
	SourcePath string
	// Link is a symlink's target (Mode has fs.ModeSymlink).
	Link string
}

// Info describes a built archive.
type Info struct {
	// Name is the normalised reference the image is imported as.
	Name string
	// Digest is the manifest's digest ("sha256:...").
	Digest string
	// ConfigDigest is the config's digest: the image ID docker shows.
	ConfigDigest string
	// Size is the size of the archive in bytes.
	Size int64
}

// Build writes the OCI image tarball of s to w.
func Build(w io.Writer, s Spec) (Info, error) {
	ref, err := NormalizeName(s.Name)
	if err != nil {
		return Info{}, err
	}
	img, err := Image(s)
	if err != nil {
		return Info{}, err
	}
	cw := &countingWriter{w: w}
	info, err := writeArchive(cw, img, ref)
	if err != nil {
		return Info{}, fmt.Errorf("imagebuild: write %s: %w", ref, err)
	}
	info.Size = cw.n
	return info, nil
}

// BuildFile writes the OCI image tarball of s to the file at path,
// creating its directory. The file appears complete or not at all.
func BuildFile(path string, s Spec) (Info, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Info{}, fmt.Errorf("imagebuild: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Info{}, fmt.Errorf("imagebuild: %w", err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	info, err := Build(f, s)
	if err != nil {
		f.Close()
		return Info{}, err
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("imagebuild: close %s: %w", f.Name(), err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return Info{}, fmt.Errorf("imagebuild: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return Info{}, fmt.Errorf("imagebuild: %w", err)
	}
	return info, nil
}

// NormalizeName returns the full reference containerd names an image by:
// a registry (docker.io by default), a repository (library/ added on
// docker.io) and a tag (latest by default). Digest references are refused:
// a built image's digest is not known in advance.
func NormalizeName(s string) (string, error) {
	if s == "" {
		return "", errors.New("imagebuild: image name is empty")
	}
	tag, err := name.NewTag(s, name.StrictValidation)
	if err != nil {
		// Not strictly valid: a registry or tag is missing.
		tag, err = name.NewTag(s)
	}
	if err != nil {
		return "", fmt.Errorf("imagebuild: image name %q: %w", s, err)
	}
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr(), nil
}

// Image builds the image of s as a go-containerregistry image (OCI media
// types), for callers that write it elsewhere (a layout, a registry).
func Image(s Spec) (v1.Image, error) {
	layerTar, err := layerTar(s.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("imagebuild: layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	base, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("imagebuild: config: %w", err)
	}
	cf := base.DeepCopy()
	cf.Architecture = s.Arch
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        withPath(s.Env),
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Labels:     s.Labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "skiff imagebuild"},
	})
	if err != nil {
		return nil, fmt.Errorf("imagebuild: append layer: %w", err)
	}
	return img, nil
}

func withPath(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	return append([]string{DefaultPath}, env...)
}

// layerTar returns the uncompressed tar of files, parents first, sorted.
func layerTar(files []File) ([]byte, error) {
	entries := map[string]File{}
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("imagebuild: file %q: path must be absolute", f.Path)
		}
		p := path.Clean(f.Path)
		if p == "/" {
			return nil, fmt.Errorf("imagebuild: file %q: cannot replace the root", f.Path)
		}
		if _, dup := entries[p]; dup {
			return nil, fmt.Errorf("imagebuild: file %q listed twice", p)
		}
		f.Path = p
		entries[p] = f
	}
	for p := range entries {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if e, ok := entries[dir]; ok {
				if !e.Mode.IsDir() {
					return nil, fmt.Errorf("imagebuild: %q is inside %q, which is not a directory", p, dir)
				}
				continue
			}
			entries[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
		}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	// Sorted by path components, so a directory always precedes what it
	// holds ("/bin" < "/bin/sh" < "/bin-x").
	sort.Slice(paths, func(i, j int) bool { return lessPath(paths[i], paths[j]) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		if err := writeEntry(tw, entries[p]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("imagebuild: layer: %w", err)
	}
	return buf.Bytes(), nil
}

func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

func writeEntry(tw *tar.Writer, f File) error {
	hdr := &tar.Header{
		Name:    strings.TrimPrefix(f.Path, "/"),
		ModTime: epoch,
		Uid:     0,
		Gid:     0,
		Uname:   "root",
		Gname:   "root",
		Format:  tar.FormatPAX,
	}
	perm := int64(f.Mode.Perm())
	if f.Mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if f.Mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	var body []byte
	switch {
	case f.Mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if f.Mode.Perm() == 0 {
			perm |= 0o755
		}
	case f.Mode&fs.ModeSymlink != 0:
		if f.Link == "" {
			return fmt.Errorf("imagebuild: symlink %q has no target", f.Path)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = f.Link
		perm = 0o777
	case f.Mode.Type() != 0:
		return fmt.Errorf("imagebuild: file %q: unsupported type %v", f.Path, f.Mode.Type())
	default:
		hdr.Typeflag = tar.TypeReg
		body = f.Data
		if f.SourcePath != "" {
			if f.Data != nil {
				return fmt.Errorf("imagebuild: file %q has both Data and SourcePath", f.Path)
			}
			st, err := os.Stat(f.SourcePath)
			if err != nil {
				return fmt.Errorf("imagebuild: file %q: %w", f.Path, err)
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("imagebuild: file %q: source %s is not a regular file", f.Path, f.SourcePath)
			}
			if body, err = os.ReadFile(f.SourcePath); err != nil {
				return fmt.Errorf("imagebuild: file %q: %w", f.Path, err)
			}
			if f.Mode.Perm() == 0 {
				perm |= int64(st.Mode().Perm())
			}
		} else if f.Mode.Perm() == 0 {
			perm |= 0o644
		}
		hdr.Size = int64(len(body))
	}
	hdr.Mode = perm
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("imagebuild: layer entry %q: %w", f.Path, err)
	}
	if _, err := tw.Write(body); err != nil {
		return fmt.Errorf("imagebuild: layer entry %q: %w", f.Path, err)
	}
	return nil
}

// writeArchive writes img as an OCI layout tar with a docker-save
// manifest.json beside it.
func writeArchive(w io.Writer, img v1.Image, ref string) (Info, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return Info{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Info{}, err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return Info{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return Info{}, err
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return Info{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Info{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return Info{}, err
	}
	tag := ref[strings.LastIndex(ref, ":")+1:]

	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mediaType,
			Size:      int64(len(manifest)),
			Digest:    digest,
			Platform:  &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
			Annotations: map[string]string{
				AnnotationImageName: ref,
				AnnotationRefName:   tag,
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return Info{}, err
	}

	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	dockerManifest := []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blob(configDigest), RepoTags: []string{ref}}}

	tw := tar.NewWriter(w)
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return Info{}, err
		}
	}
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return Info{}, err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return Info{}, err
		}
		size, err := l.Size()
		if err != nil {
			return Info{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return Info{}, err
		}
		err = tw.WriteHeader(&tar.Header{Name: blob(h), Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.Copy(tw, rc)
		}
		rc.Close()
		if err != nil {
			return Info{}, fmt.Errorf("layer %s: %w", h, err)
		}
		dockerManifest[0].Layers = append(dockerManifest[0].Layers, blob(h))
	}
	if err := put(blob(configDigest), config); err != nil {
		return Info{}, err
	}
	if err := put(blob(digest), manifest); err != nil {
		return Info{}, err
	}
	if err := put("index.json", indexJSON); err != nil {
		return Info{}, err
	}
	dm, err := json.Marshal(dockerManifest)
	if err != nil {
		return Info{}, err
	}
	if err := put("manifest.json", dm); err != nil {
		return Info{}, err
	}
	if err := tw.Close(); err != nil {
		return Info{}, err
	}
	return Info{Name: ref, Digest: digest.String(), ConfigDigest: configDigest.String()}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
