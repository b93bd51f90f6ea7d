package fake

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// ImportImages implements runtime.ImageStore: it reads the archive's
// index.json (OCI layout; names from the io.containerd.image.name or
// org.opencontainers.image.ref.name annotations) or docker-save
// manifest.json (RepoTags) and records the images it names, with the size
// of the archive's blobs. A malformed archive imports nothing.
func (r *Runtime) ImportImages(_ context.Context, rd io.Reader) ([]runtime.Image, error) {
	imgs, err := parseArchive(rd)
	if err != nil {
		return nil, fmt.Errorf("fake: import images: %w", err)
	}
	out := make([]runtime.Image, 0, len(imgs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, img := range imgs {
		r.images[img.Ref] = img
		out = append(out, img.Image)
	}
	return out, nil
}

// ListImages implements runtime.ImageStore.
func (r *Runtime) ListImages(context.Context) ([]runtime.ImageInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.ImageInfo, 0, len(r.images))
	for _, img := range r.images {
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b runtime.ImageInfo) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

const maxJSON = 4 << 20 // index, manifests and configs are small

func parseArchive(rd io.Reader) ([]runtime.ImageInfo, error) {
	tr := tar.NewReader(rd)
	files := map[string][]byte{} // small JSON files and blobs, by path
	var size int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if strings.HasPrefix(h.Name, "blobs/") {
			size += h.Size
		}
		if h.Size <= maxJSON {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("malformed archive: %s: %w", h.Name, err)
			}
			files[strings.TrimPrefix(h.Name, "./")] = b
		} else if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, fmt.Errorf("malformed archive: %s: %w", h.Name, err)
		}
	}
	var out []runtime.ImageInfo
	add := func(name, configPath string) error {
		if name == "" {
			return nil
		}
		cfg, ok := files[configPath]
		if !ok {
			return fmt.Errorf("malformed archive: image %s: no config %s", name, configPath)
		}
		sum := sha256.Sum256(cfg)
		out = append(out, runtime.ImageInfo{Image: runtime.Image{Ref: normalizeRef(name),
			ID: runtime.ImageID("sha256:" + hex.EncodeToString(sum[:]))}, Size: size})
		return nil
	}
	switch {
	case files["index.json"] != nil:
		var index struct {
			Manifests []struct {
				Digest      string
				Annotations map[string]string
			}
		}
		if err := json.Unmarshal(files["index.json"], &index); err != nil {
			return nil, fmt.Errorf("malformed archive: index.json: %w", err)
		}
		for _, m := range index.Manifests {
			var manifest struct{ Config struct{ Digest string } }
			b, ok := files[blobPath(m.Digest)]
			if !ok {
				return nil, fmt.Errorf("malformed archive: no manifest %s", m.Digest)
			}
			if err := json.Unmarshal(b, &manifest); err != nil {
				return nil, fmt.Errorf("malformed archive: manifest %s: %w", m.Digest, err)
			}
			name := m.Annotations["io.containerd.image.name"]
			if name == "" {
				name = m.Annotations["org.opencontainers.image.ref.name"]
			}
			if err := add(name, blobPath(manifest.Config.Digest)); err != nil {
				return nil, err
			}
		}
	case files["manifest.json"] != nil:
		var manifest []struct {
			Config   string
			RepoTags []string
		}
		if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
			return nil, fmt.Errorf("malformed archive: manifest.json: %w", err)
		}
		for _, m := range manifest {
			for _, tag := range m.RepoTags {
				if err := add(tag, m.Config); err != nil {
					return nil, err
				}
			}
		}
	default:
		return nil, errors.New("malformed archive: neither index.json (OCI layout) nor manifest.json (docker save)")
	}
	if len(out) == 0 {
		return nil, errors.New("the archive names no image")
	}
	return out, nil
}

func blobPath(digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return "blobs/" + alg + "/" + hex
}
