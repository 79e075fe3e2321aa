package agentcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
}

func TestDotEnv(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".env", "# Hermes\n\nA=1\nexport B = two \nC=\"quoted # not a comment\"\nD='single'\nE=x # comment\nF=\nnot a line\nA=last\n")
	env, err := DotEnv(filepath.Join(dir, ".env"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(env, map[string]string{"A": "last", "B": "two", "C": "quoted # not a comment", "D": "single", "E": "x", "F": ""}))
	env, err = DotEnv(filepath.Join(dir, "missing"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(env, 0))
	write(t, dir, "huge", strings.Repeat("A=1\n", maxFile/4+1))
	_, err = DotEnv(filepath.Join(dir, "huge"))
	assert.Check(t, is.ErrorContains(err, "larger than"))
}

func TestPortResolvesAsTheAgentDoes(t *testing.T) {
	for _, tc := range []struct {
		name, dotenv, config string
		env                  map[string]string
		want                 int
		err                  string
	}{
		{name: "nothing set", want: 8642},
		{name: ".env", dotenv: "API_SERVER_PORT=8701\n", env: map[string]string{"API_SERVER_PORT": "8800"}, want: 8701},
		{name: "environment", env: map[string]string{"API_SERVER_PORT": "8800"}, config: "platforms:\n  api_server:\n    extra:\n      port: 8900\n", want: 8800},
		{name: "config.yaml", config: "platforms:\n  api_server:\n    extra:\n      port: 8900\n", want: 8900},
		{name: "config.yaml quoted", config: "platforms:\n  api_server:\n    extra:\n      port: \"8901\"\n", want: 8901},
		{name: "the old flat key is not the agent's", config: "api_server_port: 9000\n", want: 8642},
		{name: "config.yaml not YAML: the agent's defaults", config: "this is: not: valid\n  - x\n", want: 8642},
		{name: "bad .env value", dotenv: "API_SERVER_PORT=soon\n", err: `API_SERVER_PORT="soon": "soon" is not a port`},
		{name: "out of range", env: map[string]string{"API_SERVER_PORT": "70000"}, err: "is not a port"},
		{name: "bad config value", config: "platforms:\n  api_server:\n    extra:\n      port: [1]\n", err: "is not a port"},
	} {
		dir := t.TempDir()
		if tc.dotenv != "" {
			write(t, dir, ".env", tc.dotenv)
		}
		if tc.config != "" {
			write(t, dir, "config.yaml", tc.config)
		}
		got, err := Port(dir, envOf(tc.env))
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err), tc.name)
			continue
		}
		assert.Check(t, err, tc.name)
		assert.Check(t, is.Equal(got, tc.want), tc.name)
	}
}

func TestEnsureAPIKey(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".env", "# placeholder\nAPI_SERVER_KEY=\nOTHER=1")
	gen, err := EnsureAPIKey(dir, envOf(nil), 10000)
	assert.NilError(t, err)
	assert.Check(t, gen)
	env, err := DotEnv(filepath.Join(dir, ".env"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(env["API_SERVER_KEY"], 64), "64 hex digits")
	assert.Check(t, is.Equal(env["OTHER"], "1"), "the rest is kept")
	key := env["API_SERVER_KEY"]
	st, err := os.Stat(filepath.Join(dir, ".env"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o600)))

	// Once there, never again; nor when the environment has a usable key.
	gen, err = EnsureAPIKey(dir, envOf(nil), 10000)
	assert.NilError(t, err)
	assert.Check(t, !gen)
	env, _ = DotEnv(filepath.Join(dir, ".env"))
	assert.Check(t, is.Equal(env["API_SERVER_KEY"], key))
	fresh := t.TempDir()
	gen, err = EnsureAPIKey(fresh, envOf(map[string]string{"API_SERVER_KEY": "0123456789abcdef"}), 10000)
	assert.NilError(t, err)
	assert.Check(t, !gen)
	_, err = os.Stat(filepath.Join(fresh, ".env"))
	assert.Check(t, os.IsNotExist(err), "nothing written")

	// A too-short key is not usable: a new one is made (created 0600).
	gen, err = EnsureAPIKey(fresh, envOf(map[string]string{"API_SERVER_KEY": "short"}), 10000)
	assert.NilError(t, err)
	assert.Check(t, gen)

	// Never as root, never through a symlink.
	other := t.TempDir()
	_, err = EnsureAPIKey(other, envOf(nil), 0)
	assert.Check(t, is.ErrorContains(err, "not writing an API key as root"))
	target := filepath.Join(t.TempDir(), "target")
	write(t, filepath.Dir(target), "target", "x")
	assert.NilError(t, os.Symlink(target, filepath.Join(other, ".env")))
	_, err = EnsureAPIKey(other, envOf(nil), 10000)
	assert.Check(t, err != nil, "a symlinked .env is refused")
	b, _ := os.ReadFile(target)
	assert.Check(t, is.Equal(string(b), "x"), "its target is untouched")
}

func TestGatewayPid(t *testing.T) {
	dir := t.TempDir()
	_, err := GatewayPid(dir)
	assert.Check(t, os.IsNotExist(err))
	for body, want := range map[string]int{"42\n": 42, `{"pid": 43, "kind": "hermes-gateway"}`: 43} {
		write(t, dir, "gateway.pid", body)
		got, err := GatewayPid(dir)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(got, want))
	}
	for _, bad := range []string{"", "-1", "{}", "garbage"} {
		write(t, dir, "gateway.pid", bad)
		_, err := GatewayPid(dir)
		assert.Check(t, is.ErrorContains(err, "no pid"), "%q", bad)
	}
}
