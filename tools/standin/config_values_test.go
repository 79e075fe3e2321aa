package standin

// How config.yaml and environment values are read, as Python reads them
// (gateway/config.py _coerce_bool, int(); hermes_cli/profiles.py
// _seed_model_config, _read_config_model).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func configDoc(t *testing.T, text string) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, text)
	doc, _, err := loadYAML(path)
	assert.NilError(t, err)
	return doc
}

// platforms.api_server.enabled takes YAML booleans and the strings and
// numbers _coerce_bool knows; anything else keeps the default (off).
func TestAPIServerEnabledIsCoercedLikePython(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]bool{
		"true": true, "yes": true, "on": true, `"On"`: true, `" 1 "`: true, "1": true, "2.5": true,
		"false": false, "no": false, `"off"`: false, `"0"`: false, "0": false, "0.0": false,
		`"maybe"`: false, "[1]": false, "~": false,
	} {
		doc := configDoc(t, "platforms:\n  api_server:\n    enabled: "+value+"\n    extra: {key: 0123456789abcdef}\n")
		a := resolveAPIServer(doc, newEnviron(nil), "default")
		assert.Check(t, is.Equal(a.enabled, want), "enabled: %s", value)
	}
}

// A port is read like Python's int(): YAML ints and floats (truncated),
// digit strings with blanks or underscores, booleans as 0/1; what int()
// refuses (NaN, infinity, text, a number beyond int) falls back to 8642.
func TestAPIServerPortIsReadLikePythonInt(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]int{
		"9100":                 9100,
		"9100.9":               9100,
		`" 9_100 "`:            9100,
		"true":                 1,
		"false":                0,
		".nan":                 8642,
		".inf":                 8642,
		`"ninety"`:             8642,
		"18446744073709551615": 8642, // uint64 beyond int
		"{a: 1}":               8642,
	} {
		doc := configDoc(t, "platforms:\n  api_server:\n    extra:\n      port: "+value+"\n")
		a := resolveAPIServer(doc, newEnviron([]string{"API_SERVER_KEY=0123456789abcdef"}), "default")
		assert.Check(t, is.Equal(a.port, want), "port: %s", value)
	}
}

// YAML mappings with keys that are not strings are still mappings: the keys
// are spelled out, so `1: x` is key "1".
func TestConfigMappingsWithNonStringKeys(t *testing.T) {
	t.Parallel()
	doc := configDoc(t, "platforms:\n  api_server:\n    extra:\n      port: 9300\n      1: one\n")
	a := resolveAPIServer(doc, newEnviron([]string{"API_SERVER_KEY=0123456789abcdef"}), "default")
	assert.Check(t, is.Equal(a.port, 9300))
	m, ok := stringMap(map[any]any{1: "one", true: "yes"})
	assert.Check(t, ok)
	assert.Check(t, is.DeepEqual(m, map[string]any{"1": "one", "true": "yes"}))
	_, ok = stringMap([]any{"a"})
	assert.Check(t, !ok, "a list is no mapping")
}

// The model name the API server reports: explicit model_name, else the
// profile's name, else hermes-agent.
func TestAPIServerModelName(t *testing.T) {
	t.Parallel()
	env := newEnviron([]string{"API_SERVER_KEY=0123456789abcdef"})
	assert.Check(t, is.Equal(resolveAPIServer(map[string]any{}, env, "default").model, "hermes-agent"))
	assert.Check(t, is.Equal(resolveAPIServer(map[string]any{}, env, "custom").model, "hermes-agent"))
	assert.Check(t, is.Equal(resolveAPIServer(map[string]any{}, env, "work").model, "work"))
	doc := configDoc(t, "platforms:\n  api_server:\n    model_name: '  mine  '\n")
	assert.Check(t, is.Equal(resolveAPIServer(doc, env, "work").model, "mine"))
	env.set("API_SERVER_MODEL_NAME", "from-env")
	assert.Check(t, is.Equal(resolveAPIServer(doc, env, "work").model, "from-env"))
}

// profile create copies the active profile's model block only when it says
// something: an empty, null or false model writes no config.yaml.
func TestProfileCreateSkipsAnEmptyModelBlock(t *testing.T) {
	t.Parallel()
	for _, model := range []string{"model:\n", "model: ~\n", "model: ''\n", "model: {}\n", "model: []\n", "model: false\n", "model: &a\n  - x\n"} {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "config.yaml"), model)
		f := newFakeSys(t, "HERMES_HOME="+root)
		assert.Check(t, is.Equal(f.main("profile", "create", "p"), exitOK), model)
		_, err := os.Stat(filepath.Join(root, "profiles", "p", "config.yaml"))
		if model == "model: &a\n  - x\n" {
			assert.Check(t, err, "a non-empty list is a model block")
			continue
		}
		assert.Check(t, os.IsNotExist(err), "%q gave a config.yaml", model)
	}
}

// The delete summary names the model as _read_config_model reads it: a
// plain string, or a mapping's default (else model) with its provider.
func TestProfileDeleteSummaryModel(t *testing.T) {
	t.Parallel()
	for cfg, want := range map[string]string{
		"model: plain/model\n":                   "Model:   plain/model\n",
		"model:\n  default: d/m\n  model: m/m\n": "Model:   d/m\n",
		"model:\n  default: ''\n  model: m/m\n":  "Model:   m/m\n",
		"model:\n  provider: nous\n":             "",
		"model: [a, b]\n":                        "",
		"model:\n  - not: a mapping\n":           "",
		"just text\n":                            "",
	} {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "profiles", "p", "config.yaml"), cfg)
		f := newFakeSys(t, "HERMES_HOME="+root)
		assert.Check(t, is.Equal(f.main("profile", "delete", "p"), exitOK))
		if want == "" {
			assert.Check(t, !strings.Contains(f.stdout.String(), "Model:"), "%q: %s", cfg, f.stdout.String())
			continue
		}
		assert.Check(t, is.Contains(f.stdout.String(), want), cfg)
	}
}
