package auth

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps auth a leaf: it imports api and the standard library
// only, and nothing of skiff beyond api is reachable from it, so the API
// server and the CLI can both use it and nothing here can reach the store,
// Raft or the network.
func TestImports(t *testing.T) {
	const module = "github.com/skiffhq/skiff/"
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if imp != module+"api" && strings.Contains(first, ".") {
			t.Errorf("auth imports %s; it may import only api and the standard library", imp)
		}
	}
	out, err = exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && dep != module+"api" && dep != module+"controlplane/auth" {
			t.Errorf("auth depends on %s; of skiff it may reach api only", dep)
		}
	}
}
