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
// implementations) free of the client and the agent: a runtime or network
// is usable on its own. They may use each other, the log files' package
// and the API types.
func TestLeafImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./runtime/...", "./network/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowedPrefix := []string{
		"github.com/skiffhq/skiff/nodeagent/runtime",
		"github.com/skiffhq/skiff/nodeagent/network",
		"github.com/skiffhq/skiff/nodeagent/logs",
	}
	for _, dep := range strings.Fields(string(out)) {
		if !strings.HasPrefix(dep, "github.com/skiffhq/skiff/") || dep == "github.com/skiffhq/skiff/api" {
			continue
		}
		ok := false
		for _, p := range allowedPrefix {
			if dep == p || strings.HasPrefix(dep, p+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("runtime or network depends on %s", dep)
		}
	}
}
