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
