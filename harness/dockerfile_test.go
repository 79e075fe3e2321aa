package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// upstreamExtras are the extras upstream's image installs (hermes-agent
// 00067189, Dockerfile: `pm.build_env … --extra all --extra messaging …`).
var upstreamExtras = []string{"all", "messaging", "otlp", "anthropic", "bedrock", "azure-identity", "hindsight", "matrix", "google-chat"}

// stage parses the Dockerfile with BuildKit's own parser and returns stage name.
func stage(t *testing.T, name string) instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(dockertest.RepoRoot(), "Dockerfile"))
	assert.NilError(t, err)
	defer f.Close()
	res, err := parser.Parse(f)
	assert.NilError(t, err)
	stages, _, err := instructions.Parse(res.AST, nil)
	assert.NilError(t, err)
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in the Dockerfile", name)
	return instructions.Stage{}
}

// runText is what a RUN executes: its command line and heredocs.
func runText(r *instructions.RunCommand) string {
	text := strings.Join(r.CmdLine, " ")
	for _, f := range r.Files {
		text += "\n" + f.Data
	}
	return text
}

// TestProductionAgentIsALockedInstallWithUpstreamsExtras reads the agent
// stage of the production target: the ref's uv.lock, frozen, with the
// extras upstream ships, Python 3.14, unbuffered; no unlocked installs.
func TestProductionAgentIsALockedInstallWithUpstreamsExtras(t *testing.T) {
	t.Parallel()
	st := stage(t, "agent-real")
	var runs []string
	args := map[string]string{}
	env := map[string]string{}
	for _, cmd := range st.Commands {
		switch c := cmd.(type) {
		case *instructions.RunCommand:
			runs = append(runs, runText(c))
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if a.Value != nil {
					args[a.Key] = *a.Value
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		}
	}
	all := strings.Join(runs, "\n")
	assert.Check(t, is.Contains(all, "uv sync "), "installed with uv sync from the ref's lock file")
	for _, flag := range []string{"--frozen", "--no-dev", "--no-editable", "--python 3.14"} {
		assert.Check(t, is.Contains(all, flag))
	}
	for _, bad := range []string{"pip install", "curl ", "wget "} {
		assert.Check(t, !strings.Contains(all, bad), "no unlocked %q in the agent stage", bad)
	}
	assert.Check(t, is.Equal(args["HERMES_AGENT_EXTRAS"], strings.Join(upstreamExtras, ",")))
	assert.Check(t, is.Contains(all, `--extra $e`), "each extra reaches uv sync")
	assert.Check(t, len(args["HERMES_AGENT_REF"]) == 40, "the agent is pinned to a commit: %q", args["HERMES_AGENT_REF"])
	assert.Check(t, is.Equal(env["PYTHONUNBUFFERED"], "1"))
	assert.Check(t, is.Equal(env["UV_PROJECT_ENVIRONMENT"], "/opt/hermes/venv"))
}
