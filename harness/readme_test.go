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
	"gotest.tools/v3/icmd"

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
	// The tracked tree (not what provisioning or a build left around).
	ls := icmd.RunCmd(icmd.Command("git", "ls-files"), icmd.Dir(root))
	ls.Assert(t, icmd.Success)
	var missing []string
	for _, f := range strings.Fields(ls.Stdout()) {
		if strings.Contains(f, "testdata/") {
			continue
		}
		if top, _, _ := strings.Cut(f, "/"); top == f {
			if !slices.Contains([]string{".gitignore", ".dockerignore", "go.mod", "go.sum", "README.md"}, f) && !covered(f) {
				missing = append(missing, f)
			}
			continue
		}
		if strings.HasSuffix(f, ".go") && !covered(filepath.Dir(f)) {
			missing = append(missing, filepath.Dir(f))
		}
		if top, _, _ := strings.Cut(f, "/"); !covered(top) {
			within := false
			for p := range rows {
				within = within || strings.HasPrefix(p, top+"/")
			}
			if !within {
				missing = append(missing, top)
			}
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
