package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// importWithContainerd runs containerd's own importer (what Client.Import
// runs, minus the image service) into a local content store and returns
// the images it would create, named as Client.Import names them.
func importWithContainerd(t *testing.T, archiveBytes []byte) (content.Store, []images.Image) {
	t.Helper()
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := archive.ImportIndex(ctx, cs, bytes.NewReader(archiveBytes))
	if err != nil {
		t.Fatalf("containerd ImportIndex: %v", err)
	}
	p, err := content.ReadBlob(ctx, cs, idxDesc)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(p, &idx); err != nil {
		t.Fatal(err)
	}
	var imgs []images.Image
	for _, m := range idx.Manifests {
		// Client.Import's naming: containerd's annotation, else the OCI
		// ref name as is.
		n := m.Annotations[images.AnnotationImageName]
		if n == "" {
			n = m.Annotations[ocispec.AnnotationRefName]
		}
		if n != "" {
			imgs = append(imgs, images.Image{Name: n, Target: m})
		}
	}
	return cs, imgs
}

func TestContainerdImportsByName(t *testing.T) {
	var buf bytes.Buffer
	info, err := Build(&buf, testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		format func([]byte) []byte
	}{
		{"oci layout", func(b []byte) []byte { return b }},
		{"docker manifest.json only", withoutOCILayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cs, imgs := importWithContainerd(t, tc.format(buf.Bytes()))
			if len(imgs) != 1 || imgs[0].Name != info.Name {
				t.Fatalf("imported %+v, want one image named %s", imgs, info.Name)
			}
			cfg, err := imgs[0].Config(ctx, cs, platforms.Default())
			if err != nil {
				t.Fatalf("resolve config for %s: %v", platforms.DefaultString(), err)
			}
			if cfg.Digest.String() != info.ConfigDigest {
				t.Errorf("config %s, want %s", cfg.Digest, info.ConfigDigest)
			}
			diffIDs, err := imgs[0].RootFS(ctx, cs, platforms.Default())
			if err != nil || len(diffIDs) != 1 {
				t.Errorf("rootfs %v, %v; want one layer", diffIDs, err)
			}
			// Everything the image references is in the store (unpack
			// would need it).
			if err := images.Walk(ctx, images.ChildrenHandler(cs), imgs[0].Target); err != nil {
				t.Errorf("walk %s: %v", imgs[0].Name, err)
			}
			if tc.name == "oci layout" && imgs[0].Target.Digest.String() != info.Digest {
				t.Errorf("target %s, want manifest %s", imgs[0].Target.Digest, info.Digest)
			}
		})
	}
}

// withoutOCILayout drops oci-layout from an archive, so containerd reads
// it as a docker-save tarball.
func withoutOCILayout(b []byte) []byte {
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(b)), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		if hdr.Name == "oci-layout" {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}
