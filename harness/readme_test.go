package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"github.com/hermes-agent/hermes-s6/tools/commands"
)

// layoutRows reads the README's "## Layout" table: each row's paths (the
// backticked words of its first cell) and its description.
func layoutRows(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), "README.md"))
	assert.NilError(t, err)
	_, section, ok := strings.Cut(string(b), "\n## Layout\n")
	assert.Assert(t, ok, "README.md has no ## Layout section")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.Trim(cells[1], " -") == "" || strings.TrimSpace(cells[1]) == "path" {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			rows[strings.TrimSuffix(m[1], "/")] = strings.TrimSpace(cells[2])
		}
	}
	assert.Assert(t, len(rows) > 10, "the Layout table was not found: %v", rows)
	return rows
}

// Every Go package of the product and every top-level entry has its row in
// the README's layout table, and every row names something that exists.
func TestReadmeLayoutMatchesTheTree(t *testing.T) {
	root := dockertest.RepoRoot()
	rows := layoutRows(t)
	for p := range rows {
		_, err := os.Stat(filepath.Join(root, p))
		assert.Check(t, err, "README layout names %s, which does not exist", p)
	}
	covered := func(dir string) bool {
		for p := range rows {
			if dir == p || strings.HasPrefix(dir, p+"/") {
				return true
			}
		}
		return false
	}
	var missing []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (rel == ".git" || rel == ".cache" || strings.Contains(rel, "testdata")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			if dir := filepath.Dir(rel); !covered(dir) {
				missing = append(missing, dir)
			}
		}
		return nil
	})
	assert.NilError(t, err)
	entries, err := os.ReadDir(root)
	assert.NilError(t, err)
	for _, e := range entries {
		n := e.Name()
		if slices.Contains([]string{".git", ".cache", ".gitignore", ".dockerignore", "go.mod", "go.sum", "README.md"}, n) || covered(n) {
			continue
		}
		within := false
		for p := range rows {
			within = within || strings.HasPrefix(p, n+"/")
		}
		if !within {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	assert.Check(t, is.Len(slices.Compact(missing), 0), "not in README's layout table: %v", slices.Compact(missing))
}

// The README's row for the multi-call binary lists exactly its names.
func TestReadmeListsTheMultiCallNames(t *testing.T) {
	row := layoutRows(t)["tools/cmd/hermes-s6"]
	var listed []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(row, -1) {
		listed = append(listed, strings.Split(m[1], "/")...)
	}
	sort.Strings(listed)
	assert.Check(t, is.DeepEqual(listed, strings.Fields(commands.Names())))
}
