package apiserver

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the API server free of Raft and of the client: it knows
// the Raft node only through Cluster.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.Contains(dep, "hashicorp/raft"),
			strings.HasPrefix(dep, "github.com/skiffhq/skiff/controlplane/raftnode"),
			strings.HasPrefix(dep, "github.com/skiffhq/skiff/client"),
			strings.HasPrefix(dep, "github.com/skiffhq/skiff/cli"):
			t.Errorf("apiserver depends on %s", dep)
		}
	}
}
