package scheduler

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The scheduler is pure: it may depend on api, the standard library and
// the Prometheus client, never on the store, Raft, HTTP servers or agents.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(path string) bool {
		first, _, _ := strings.Cut(path, "/")
		switch {
		case !strings.Contains(first, "."):
			return path != "net/http" && !strings.HasPrefix(path, "net/http/")
		case path == "github.com/skiffhq/skiff/api":
			return true
		case strings.HasPrefix(path, "github.com/prometheus/"):
			return true
		}
		return false
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed(path) {
				t.Errorf("%s imports %s", f, path)
			}
		}
		if f == "doc.go" && (ast.Doc == nil || !strings.HasPrefix(ast.Doc.Text(), "Package scheduler ")) {
			t.Error("doc.go lacks the package comment")
		}
	}
}
