package containerd

import (
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiffhq/skiff/api"
)

func TestContainerArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"--serve"}}
	for _, tc := range []struct {
		name          string
		img           ocispec.ImageConfig
		command, args []string
		want          []string
	}{
		{"image defaults", img, nil, nil, []string{"/entry", "--serve"}},
		{"args replace cmd", img, nil, []string{"--fetch"}, []string{"/entry", "--fetch"}},
		{"command replaces both", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"command and args", img, []string{"/bin/sh"}, []string{"-c", "true"}, []string{"/bin/sh", "-c", "true"}},
		{"cmd only image", ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}, nil, nil, []string{"/bin/sh"}},
		{"args with no entrypoint", ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}, nil, []string{"sleep", "1"}, []string{"sleep", "1"}},
		{"nothing", ocispec.ImageConfig{}, nil, nil, nil},
	} {
		if got := containerArgs(tc.img, tc.command, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("%s: containerArgs = %q, want %q", tc.name, got, tc.want)
		}
	}
	// The image's slices are not modified.
	containerArgs(img, nil, []string{"x"})
	if !slices.Equal(img.Entrypoint, []string{"/entry"}) {
		t.Errorf("image entrypoint changed: %q", img.Entrypoint)
	}
}

func TestPodCgroup(t *testing.T) {
	for uid, want := range map[string]string{
		"7f3c-11":  "/skiff/pod7f3c-11",
		"../evil":  "/skiff/pod___evil",
		"a/b":      "/skiff/poda_b",
		"plain_id": "/skiff/podplain_id",
	} {
		if got := podCgroup("/skiff", api.UID(uid)); got != want {
			t.Errorf("podCgroup(%q) = %q, want %q", uid, got, want)
		}
	}
}

func TestMountsParse(t *testing.T) {
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Skip("no cgroup hierarchy mounted")
	}
	for _, m := range mounts {
		if m.dir == "" || (!m.v2 && len(m.controllers) == 0) {
			t.Errorf("cgroup mount %+v: want a directory and, for v1, controllers", m)
		}
	}
}
