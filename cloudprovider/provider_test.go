package cloudprovider

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for _, name := range Providers() {
		p, err := New(name, Config{})
		if err != nil || p.ProviderName() != name {
			t.Fatalf("New(%q) = %v, %v", name, p, err)
		}
	}
	for _, name := range []string{"", "aws", "Local"} {
		_, err := New(name, Config{})
		if !errors.Is(err, ErrUnknownProvider) || !strings.Contains(err.Error(), "known: fake, local") {
			t.Fatalf("New(%q) = %v; want ErrUnknownProvider listing the known ones", name, err)
		}
	}
}

// TestImports keeps cloudprovider at the bottom of the import graph: api and
// the standard library only (doc.go says why).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if file == "doc.go" && (f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package cloudprovider ")) {
			t.Error("doc.go has no package comment")
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if path != "github.com/skiffhq/skiff/api" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s; cloudprovider may import only api and the standard library", file, path)
			}
		}
	}
	if _, err := os.Stat("doc.go"); err != nil {
		t.Error(err)
	}
}
