package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
)

// vulnDB is the offline Go vulnerability database .ci/provision indexes
// (what .ci/lint's govulncheck reads), or "" when there is none.
func vulnDB() string {
	cache := os.Getenv("HERMES_S6_CACHE")
	if cache == "" {
		cache = "/var/cache/hermes-s6"
	}
	db := filepath.Join(cache, "vulndb")
	if _, err := os.Stat(filepath.Join(db, "index", "db.json")); err != nil {
		return ""
	}
	return db
}

// TestGovulncheckFailsOnAReachableVulnerability: the govulncheck of
// .ci/lint, with the offline database, fails (exit 3) on a module that calls
// a function with a known vulnerability (golang.org/x/text v0.3.6's
// language.Parse, GO-2021-0113) and names it with the version that fixes
// it; the same module at the fixed version passes. So a clean lint means
// something.
func TestGovulncheckFailsOnAReachableVulnerability(t *testing.T) {
	t.Parallel()
	db := vulnDB()
	if db == "" {
		t.Skip("no Go vulnerability database: run sh .ci/provision (or sh .ci/provision vulndb)")
	}
	bin := icmd.RunCmd(icmd.Command("go", "tool", "-modfile=.ci/tools/lint/go.mod", "-n", "govulncheck"), icmd.Dir(dockertest.RepoRoot()), icmd.WithTimeout(5*time.Minute))
	bin.Assert(t, icmd.Success)
	govulncheck := strings.TrimSpace(bin.Stdout())

	module := func(textVersion string) string {
		dir := t.TempDir()
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/vulnerable\n\ngo 1.26\n\nrequire golang.org/x/text "+textVersion+"\n"), 0o644))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() {
	fmt.Println(language.Parse("en-US"))
}
`), 0o644))
		cmd := icmd.Command("go", "mod", "tidy")
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		icmd.RunCmd(cmd, icmd.Dir(dir), icmd.WithTimeout(5*time.Minute)).Assert(t, icmd.Success)
		return dir
	}
	run := func(dir string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(govulncheck, "-db", "file://"+db, "./..."), icmd.Dir(dir), icmd.WithTimeout(5*time.Minute))
	}

	r := run(module("v0.3.6"))
	r.Assert(t, icmd.Expected{ExitCode: 3})
	out := r.Combined()
	assert.Check(t, is.Contains(out, "GO-2021-0113"))
	assert.Check(t, is.Contains(out, "Fixed in: golang.org/x/text@v0.3.7"))
	assert.Check(t, is.Contains(out, "main.go"), "the trace points at the call:\n%s", out)

	run(module("v0.3.8")).Assert(t, icmd.Success)
}
