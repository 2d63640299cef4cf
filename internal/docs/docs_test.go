package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// root is the repository, from this package's folder.
const root = "../.."

// packages lists the folders of the tree that hold Go files.
func packages(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// tablePaths returns the backquoted folders ("`egress/xds/`") in the first
// column of the markdown table of file whose header line is header.
func tablePaths(t *testing.T, file, header string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n"+header+"\n")
	if !ok {
		t.Fatalf("%s: no table headed %q", file, header)
	}
	row := regexp.MustCompile("^\\| `([a-z0-9_/.-]+?)/?` \\|")
	out := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if m := row.FindStringSubmatch(line); m != nil {
			out[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	return out
}

// TestPackageTables: the README's package table and docs/architecture.md
// each name every package of the tree, and no package that is gone.
func TestPackageTables(t *testing.T) {
	tree := packages(t)
	if len(tree) < 10 {
		t.Fatalf("found only %d packages: %v", len(tree), tree)
	}
	for doc, header := range map[string]string{"README.md": "| path | one job |", "docs/architecture.md": "| package | owns |"} {
		named := tablePaths(t, doc, header)
		for _, p := range tree {
			if !named[p] {
				t.Errorf("%s: package %s is not in its package table", doc, p)
			}
		}
		for p := range named {
			if strings.HasPrefix(p, "scripts/") || p == "examples" {
				continue // not Go packages
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s: the package table names %s, which is not in the tree", doc, p)
			}
		}
	}
}
