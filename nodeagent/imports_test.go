package nodeagent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the agent and its subpackages off the control plane,
// the scheduler and the CLI: they meet the control plane only at the HTTP
// API (tests may start one in-process through test/testcluster).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"controlplane", "scheduler", "cli", "cmd", "test"} {
			p := "github.com/skiffhq/skiff/" + banned
			if dep == p || strings.HasPrefix(dep, p+"/") {
				t.Errorf("nodeagent depends on %s", dep)
			}
		}
	}
}

// TestLeafImports keeps the runtime and network packages (and their
// implementations) free of the client and the agent: a runtime is usable
// on its own, and the containerd one will be too.
func TestLeafImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./runtime/...", "./network/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := map[string]bool{
		"github.com/skiffhq/skiff/api":                           true,
		"github.com/skiffhq/skiff/nodeagent/runtime":             true,
		"github.com/skiffhq/skiff/nodeagent/runtime/fake":        true,
		"github.com/skiffhq/skiff/nodeagent/runtime/runtimetest": true,
		"github.com/skiffhq/skiff/nodeagent/network":             true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/skiffhq/skiff/") && !allowed[dep] {
			t.Errorf("runtime or network depends on %s", dep)
		}
	}
}
