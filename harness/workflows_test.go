package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The GitHub workflows, read as YAML: no Docker needed.

type workflow struct {
	path        string
	root        *yaml.Node
	Permissions map[string]string `yaml:"permissions"`
	Env         map[string]string `yaml:"env"`
	Jobs        map[string]struct {
		RunsOn      string            `yaml:"runs-on"`
		Permissions map[string]string `yaml:"permissions"`
		Strategy    struct {
			Matrix struct {
				Include []map[string]string `yaml:"include"`
			} `yaml:"matrix"`
		} `yaml:"strategy"`
		Steps []struct {
			Name string            `yaml:"name"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]any    `yaml:"with"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readWorkflow(t *testing.T, name string) *workflow {
	t.Helper()
	path := filepath.Join(dockertest.RepoRoot(), ".github", "workflows", name)
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	w := &workflow{path: path, root: &yaml.Node{}}
	assert.NilError(t, yaml.Unmarshal(b, w.root), "%s", name)
	assert.NilError(t, w.root.Decode(w), "%s: permissions must be maps of scope: level", name)
	return w
}

// runs is every step's environment (KEY=VALUE lines) and run script, joined.
func (w *workflow) runs() string {
	var b strings.Builder
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			for k, v := range s.Env {
				b.WriteString(k + "=" + v + "\n")
			}
			b.WriteString(s.Run)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// uses lists every `uses:` value with its line comment and line number.
func (w *workflow) uses() []struct {
	ref, comment string
	line         int
} {
	var out []struct {
		ref, comment string
		line         int
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k, v := n.Content[i], n.Content[i+1]; k.Value == "uses" && v.Kind == yaml.ScalarNode {
					out = append(out, struct {
						ref, comment string
						line         int
					}{v.Value, v.LineComment, v.Line})
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(w.root)
	return out
}

var (
	pinnedRE  = regexp.MustCompile(`^[A-Za-z0-9._-]+/[A-Za-z0-9._/-]+@[0-9a-f]{40}$`)
	versionRE = regexp.MustCompile(`^#\s*v\d+(\.\d+)*\b`)
)

func TestWorkflowActionsArePinned(t *testing.T) {
	for _, name := range []string{"ci.yml", "release.yml"} {
		w := readWorkflow(t, name)
		uses := w.uses()
		assert.Check(t, len(uses) > 0, "%s uses no actions?", name)
		for _, u := range uses {
			assert.Check(t, pinnedRE.MatchString(u.ref), "%s:%d: %q must be pinned to a full 40-hex commit SHA", name, u.line, u.ref)
			assert.Check(t, versionRE.MatchString(u.comment), "%s:%d: %q needs a `# vX` comment naming the version (have %q)", name, u.line, u.ref, u.comment)
		}
	}
}

// TestWorkflowPermissionsAreLeastPrivilege: contents: read at the top; write
// scopes only on the jobs that need them.
func TestWorkflowPermissionsAreLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		file  string
		write map[string][]string // job → scopes it may write
	}{
		{"ci.yml", map[string][]string{}},
		{"release.yml", map[string][]string{
			"build": {"packages"},
			"merge": {"attestations", "id-token", "packages"},
		}},
	} {
		w := readWorkflow(t, tc.file)
		assert.Check(t, is.DeepEqual(w.Permissions, map[string]string{"contents": "read"}), "%s: top-level permissions", tc.file)
		for name, j := range w.Jobs {
			var writes []string
			for scope, level := range j.Permissions {
				assert.Check(t, level == "read" || level == "write" || level == "none", "%s: job %s: %s: %q", tc.file, name, scope, level)
				if level == "write" {
					writes = append(writes, scope)
				}
			}
			slices.Sort(writes)
			want := tc.write[name]
			if len(want) == 0 {
				assert.Check(t, is.Len(writes, 0), "%s: job %s may not write anything", tc.file, name)
				continue
			}
			assert.Check(t, is.DeepEqual(writes, want), "%s: job %s write scopes", tc.file, name)
			assert.Check(t, is.Equal(j.Permissions["contents"], "read"), "%s: job %s must keep contents: read (job permissions replace the top level)", tc.file, name)
		}
		for name := range tc.write {
			_, ok := w.Jobs[name]
			assert.Check(t, ok, "%s: no job %s", tc.file, name)
		}
	}
}

func TestWorkflowReleaseBuildsNativelyMergesAndSigns(t *testing.T) {
	w := readWorkflow(t, "release.yml")
	b, ok := w.Jobs["build"]
	assert.Assert(t, ok, "release.yml: no build job")
	assert.Check(t, is.Equal(b.RunsOn, "${{ matrix.runner }}"))
	pairs := map[string]string{}
	for _, inc := range b.Strategy.Matrix.Include {
		pairs[inc["platform"]] = inc["runner"]
	}
	assert.Check(t, is.DeepEqual(pairs, map[string]string{
		"linux/amd64": "ubuntu-24.04",
		"linux/arm64": "ubuntu-24.04-arm",
	}), "one native runner per platform")

	runs := w.runs()
	for want, why := range map[string]string{
		"docker buildx bake release-by-digest":         "push by digest",
		"SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)": "reproducible: SOURCE_DATE_EPOCH from the last commit",
		"docker buildx imagetools create":              "merge with imagetools create",
		"cosign sign --yes":                            "keyless cosign signature",
		"cosign verify":                                "the signature is verified",
		"cosign attest --yes --type spdxjson":          "each platform's SBOM as a keyless signed attestation",
		"cosign verify-attestation --type spdxjson":    "the SBOM attestations are verified",
	} {
		assert.Check(t, strings.Contains(runs, want), "release.yml must run %q (%s)", want, why)
	}
	var actions []string
	for _, u := range w.uses() {
		actions = append(actions, u.ref[:strings.IndexByte(u.ref, '@')])
	}
	assert.Check(t, is.Contains(actions, "sigstore/cosign-installer"))
	assert.Check(t, is.Contains(actions, "actions/attest-build-provenance"))
}

func TestWorkflowCIRunsTestsAndHarness(t *testing.T) {
	w := readWorkflow(t, "ci.yml")
	runs := w.runs()
	for _, want := range []string{
		"sh .ci/lint", "--call=check",
		"go test -short", // unit tests
		"docker buildx bake test",
		"./harness/",         // the harness against the hermetic image
		"./harness/publish/", // the hermetic multi-arch publish
		"HERMES_PROVISION_ARM64=1",
		"TEST_S6_SOURCE=release", // the release s6 source, with network
		"docker buildx bake image",
	} {
		assert.Check(t, strings.Contains(runs, want), "ci.yml must run %q", want)
	}
	assert.Check(t, strings.Count(runs, "go test") >= 3, "ci.yml: unit tests, harness, publish harness")
}

// TestWorkflowBuildKitMatchesGoMod: the builder image of the workflows is the
// BuildKit version the tools module pins (the one .ci/provision builds).
func TestWorkflowBuildKitMatchesGoMod(t *testing.T) {
	const gomod = ".ci/tools/go.mod"
	b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), gomod))
	assert.NilError(t, err)
	f, err := modfile.ParseLax(gomod, b, nil)
	assert.NilError(t, err)
	var version string
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/moby/buildkit" {
			version = r.Mod.Version
		}
	}
	assert.Assert(t, version != "", "%s does not require github.com/moby/buildkit", gomod)
	for _, name := range []string{"ci.yml", "release.yml"} {
		w := readWorkflow(t, name)
		assert.Check(t, is.Equal(w.Env["BUILDKIT_IMAGE"], "moby/buildkit:"+version), "%s: BUILDKIT_IMAGE", name)
	}
}
