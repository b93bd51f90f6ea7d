package probe

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the prober usable on its own: of skiff, it may use
// the API types and the runtime interface only (not the agent, which
// wires it in, nor the client or the control plane).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := map[string]bool{
		"github.com/skiffhq/skiff/api":               true,
		"github.com/skiffhq/skiff/nodeagent/runtime": true,
		"github.com/skiffhq/skiff/nodeagent/probe":   true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/skiffhq/skiff/") && !allowed[dep] {
			t.Errorf("nodeagent/probe depends on %s", dep)
		}
	}
}
