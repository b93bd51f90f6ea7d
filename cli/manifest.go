package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// manifestObject is one object read from a manifest, with where it came
// from for error messages.
type manifestObject struct {
	Source string
	Object api.Object
	Info   api.ResourceInfo
}

var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// manifestFiles expands the -f arguments: "-" is stdin, a directory stands
// for its *.yaml, *.yml and *.json files in name order (its whole tree
// with recursive).
func manifestFiles(args []string, recursive bool) ([]string, error) {
	var files []string
	var errs []error
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("the path %q does not exist", a))
			continue
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != a && !recursive {
					return fs.SkipDir
				}
				return nil
			}
			if manifestExts[strings.ToLower(filepath.Ext(p))] {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", a, err))
			continue
		}
		sort.Strings(found)
		if len(found) == 0 {
			errs = append(errs, fmt.Errorf("no manifests (*.yaml, *.yml, *.json) in directory %s", a))
		}
		files = append(files, found...)
	}
	return files, errors.Join(errs...)
}

// readManifests decodes every object of every file before anything is
// sent, and reports every problem at once. Namespaced objects without a
// namespace get ns; an object whose namespace differs from an explicit -n
// is an error, as in kubectl.
func readManifests(args []string, recursive bool, stdin io.Reader, ns string, nsExplicit bool) ([]manifestObject, error) {
	if len(args) == 0 {
		return nil, errors.New("must specify -f FILE (a file, a directory, or - for stdin)")
	}
	files, err := manifestFiles(args, recursive)
	errs := []error{err}
	var out []manifestObject
	for _, f := range files {
		var data []byte
		var rerr error
		name := f
		if f == "-" {
			name = "<stdin>"
			data, rerr = io.ReadAll(stdin)
		} else {
			data, rerr = os.ReadFile(f)
		}
		if rerr != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", name, rerr))
			continue
		}
		objs, derr := api.Decode(data)
		if derr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, derr))
			continue
		}
		for i, o := range objs {
			src := name
			if len(objs) > 1 {
				src = fmt.Sprintf("%s (document %d)", name, i+1)
			}
			info, ok := api.ByKind(api.KindOf(o))
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown kind %q", src, api.KindOf(o)))
				continue
			}
			m := o.GetObjectMeta()
			if m.Name == "" {
				errs = append(errs, fmt.Errorf("%s: %s: metadata.name: Required value", src, info.Kind))
				continue
			}
			switch {
			case !info.Namespaced:
				m.Namespace = ""
			case m.Namespace == "":
				m.Namespace = ns
			case nsExplicit && m.Namespace != ns:
				errs = append(errs, fmt.Errorf("%s: the namespace from the provided object %q does not match the namespace %q; pass --namespace=%s or remove the namespace from the manifest",
					src, m.Namespace, ns, m.Namespace))
				continue
			}
			out = append(out, manifestObject{Source: src, Object: o, Info: info})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no objects found in the manifests")
	}
	return out, nil
}
