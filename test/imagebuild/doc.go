// Package imagebuild builds OCI image tarballs from files, without Docker
// or a registry: the example workloads' images (make images) and the
// images of integration tests.
//
// An archive is an OCI image layout (oci-layout, index.json, blobs/) that
// also carries a docker-save manifest.json, so containerd's Client.Import,
// `ctr image import`, `docker load` and go-containerregistry's tarball
// package all read it and name the image after Spec.Name. Archives are
// reproducible: the same spec gives the same bytes (zero timestamps, root
// ownership, sorted entries).
//
// It depends on go-containerregistry only; it must not depend on the rest
// of skiff, so tests anywhere can use it.
package imagebuild
