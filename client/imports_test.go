package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the client on api only: the CLI and node agents import
// it, and must not pull in the control plane.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/skiffhq/skiff/") && dep != "github.com/skiffhq/skiff/api" && dep != "github.com/skiffhq/skiff/client" {
			t.Errorf("client depends on %s", dep)
		}
	}
}
