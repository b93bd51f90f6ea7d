package pki

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps pki on the standard library and off every other skiff
// package: the API server, the Raft transport, the agent and the CLI all
// import it.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/skiffhq/skiff/controlplane/pki" {
			continue
		}
		first, _, _ := strings.Cut(dep, "/")
		if strings.Contains(first, ".") {
			t.Errorf("pki depends on %s; it must use the standard library only", dep)
		}
	}
}
