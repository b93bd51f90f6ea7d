package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	distref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// cachedImage is what the runtime learnt about an image at one target
// digest: its ID, its configuration and that it is unpacked. Containers
// start often from the same few images; this keeps the warm path to one
// image lookup.
type cachedImage struct {
	target digest.Digest
	id     runtime.ImageID
	config ocispec.ImageConfig
}

// normalizeRef spells a reference fully (nginx ->
// docker.io/library/nginx:latest), as containerd names images.
func normalizeRef(ref string) (string, error) {
	named, err := distref.ParseDockerRef(ref)
	if err != nil {
		return "", err
	}
	return named.String(), nil
}

// EnsureImage implements runtime.Runtime.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (runtime.Image, error) {
	ctx = r.ns(ctx)
	name, err := normalizeRef(ref)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("containerd: image %q: %w: %w", ref, runtime.ErrImagePull, err)
	}
	img, err := r.client.GetImage(ctx, name)
	present := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return runtime.Image{}, fmt.Errorf("containerd: image %s: %w", name, err)
	}
	switch {
	case present && policy != api.PullAlways:
		ci, err := r.prepare(ctx, img)
		if err != nil {
			return runtime.Image{}, fmt.Errorf("containerd: image %s: %w", name, err)
		}
		return runtime.Image{Ref: name, ID: ci.id}, nil
	case !present && policy == api.PullNever:
		return runtime.Image{}, fmt.Errorf("containerd: image %s: %w", name, runtime.ErrImageNotPresent)
	}
	img, err = r.pull(ctx, name)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("containerd: pull %s: %w: %w", name, runtime.ErrImagePull, err)
	}
	ci, err := r.prepare(ctx, img)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("containerd: pull %s: %w: %w", name, runtime.ErrImagePull, err)
	}
	return runtime.Image{Ref: name, ID: ci.id}, nil
}

// pull fetches and unpacks an image from its registry, within the
// configured timeouts.
func (r *Runtime) pull(ctx context.Context, name string) (containerd.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	transport := docker.DefaultHTTPTransport(nil)
	transport.DialContext = (&net.Dialer{Timeout: r.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = r.cfg.DialTimeout
	transport.ResponseHeaderTimeout = 3 * r.cfg.DialTimeout
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(&http.Client{Transport: transport}),
			docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	return r.client.Pull(ctx, name,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(r.cfg.Snapshotter))
}

// prepare makes sure img is unpacked for the snapshotter and learns its
// ID and configuration (cached per target digest).
func (r *Runtime) prepare(ctx context.Context, img containerd.Image) (cachedImage, error) {
	target := img.Target().Digest
	r.imagesMu.Lock()
	ci, ok := r.images[img.Name()]
	r.imagesMu.Unlock()
	if ok && ci.target == target {
		return ci, nil
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return ci, fmt.Errorf("unpacked: %w", err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return ci, fmt.Errorf("unpack: %w", err)
		}
	}
	desc, err := img.Config(ctx)
	if err != nil {
		return ci, fmt.Errorf("config: %w", err)
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return ci, fmt.Errorf("config: %w", err)
	}
	ci = cachedImage{target: target, id: runtime.ImageID(desc.Digest), config: spec.Config}
	r.imagesMu.Lock()
	r.images[img.Name()] = ci
	r.imagesMu.Unlock()
	return ci, nil
}

// forget drops what the cache knows of an image (its snapshots may be
// gone: containerd collects them once the image was deleted).
func (r *Runtime) forget(name string) {
	r.imagesMu.Lock()
	delete(r.images, name)
	r.imagesMu.Unlock()
}

// localImage finds an image that EnsureImage made available.
func (r *Runtime) localImage(ctx context.Context, ref string) (containerd.Image, ocispec.ImageConfig, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return nil, ocispec.ImageConfig{}, fmt.Errorf("image %q: %w", ref, err)
	}
	img, err := r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, ocispec.ImageConfig{}, fmt.Errorf("image %s: %w", name, runtime.ErrImageNotPresent)
	}
	if err != nil {
		return nil, ocispec.ImageConfig{}, fmt.Errorf("image %s: %w", name, err)
	}
	ci, err := r.prepare(ctx, img)
	if err != nil {
		return nil, ocispec.ImageConfig{}, fmt.Errorf("image %s: %w", name, err)
	}
	return img, ci.config, nil
}

// imageID is an image's ID (its config digest), "" if unreadable.
func (r *Runtime) imageID(ctx context.Context, img containerd.Image) runtime.ImageID {
	desc, err := img.Config(ctx)
	if err != nil {
		return ""
	}
	return runtime.ImageID(desc.Digest)
}

// ImportImages implements runtime.ImageStore: every image of an OCI
// layout or docker-save tarball, unpacked. If anything fails, the images
// this call created are deleted again (their content goes with the next
// garbage collection).
func (r *Runtime) ImportImages(ctx context.Context, rd io.Reader) ([]runtime.Image, error) {
	ctx = r.ns(ctx)
	imgs, err := r.client.Import(ctx, rd,
		containerd.WithImageRefTranslator(func(ref string) string {
			name, err := normalizeRef(ref)
			if err != nil {
				return ""
			}
			return name
		}))
	if err != nil {
		return nil, fmt.Errorf("containerd: import images: %w", err)
	}
	undo := func(cause error) ([]runtime.Image, error) {
		for _, i := range imgs {
			if err := r.client.ImageService().Delete(context.WithoutCancel(ctx), i.Name); err != nil && !errdefs.IsNotFound(err) {
				cause = errors.Join(cause, fmt.Errorf("delete %s: %w", i.Name, err))
			}
		}
		return nil, cause
	}
	if len(imgs) == 0 {
		return undo(errors.New("containerd: import images: the archive names no image"))
	}
	out := make([]runtime.Image, 0, len(imgs))
	for _, i := range imgs {
		ci, err := r.prepare(ctx, containerd.NewImage(r.client, i))
		if err != nil {
			return undo(fmt.Errorf("containerd: import image %s: %w", i.Name, err))
		}
		out = append(out, runtime.Image{Ref: i.Name, ID: ci.id})
	}
	return out, nil
}

// ListImages implements runtime.ImageStore.
func (r *Runtime) ListImages(ctx context.Context) ([]runtime.ImageInfo, error) {
	ctx = r.ns(ctx)
	imgs, err := r.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("containerd: list images: %w", err)
	}
	out := make([]runtime.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		size, err := img.Size(ctx)
		if err != nil {
			r.cfg.Logger.Warn("containerd: image size", "image", img.Name(), "err", err)
		}
		out = append(out, runtime.ImageInfo{Image: runtime.Image{Ref: img.Name(), ID: r.imageID(ctx, img)}, Size: size})
	}
	return out, nil
}
