package containerd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// What a containerd container record carries. Labels are for filtering and
// for what changes (start and exit); the extension holds the immutable
// metadata, which may be larger than a label allows.
const (
	labelKind       = "io.skiff.kind" // kindSandbox or kindContainer
	labelSandbox    = "io.skiff.sandbox"
	labelPodUID     = "io.skiff.pod-uid"
	labelStoppedAt  = "io.skiff.stopped-at" // sandbox stopped
	labelStartedAt  = "io.skiff.started-at"
	labelFinishedAt = "io.skiff.finished-at" // set when the exit is not in a task any more
	labelExitCode   = "io.skiff.exit-code"
	labelReason     = "io.skiff.reason"
	labelMessage    = "io.skiff.message"

	kindSandbox   = "sandbox"
	kindContainer = "container"

	extMeta    = "io.skiff.meta"
	extTypeURL = "skiff.io/runtime.containerd.Meta/v1"

	maxMessage = 2048 // bytes of a start error kept in a label (limit: 4096)
)

// sandboxMeta is the extension of a sandbox record.
type sandboxMeta struct {
	Pod         runtime.PodMeta
	Hostname    string
	NetNS       string
	Labels      map[string]string `json:",omitempty"`
	Annotations map[string]string `json:",omitempty"`
}

// containerMeta is the extension of a container record.
type containerMeta struct {
	Meta        runtime.ContainerMeta
	Image       runtime.Image
	LogPath     string            `json:",omitempty"`
	Cgroup      string            // cgroupsPath of the OCI spec
	Labels      map[string]string `json:",omitempty"`
	Annotations map[string]string `json:",omitempty"`
}

func marshalMeta(v any) (*anypb.Any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: extTypeURL, Value: b}, nil
}

func unmarshalMeta(c containers.Container, v any) error {
	ext, ok := c.Extensions[extMeta]
	if !ok || ext == nil {
		return fmt.Errorf("record %s has no %s extension", c.ID, extMeta)
	}
	if err := json.Unmarshal(ext.GetValue(), v); err != nil {
		return fmt.Errorf("record %s: decode %s: %w", c.ID, extMeta, err)
	}
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func parseInt32(s string) int32 {
	n, _ := strconv.ParseInt(s, 10, 32)
	return int32(n)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
