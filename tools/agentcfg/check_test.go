package agentcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// profileDir is a profile home holding the given files.
func profileDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	return dir
}

func envFrom(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Check: a value the gateway cannot work with is fatal and says where it came
// from; a file the image cannot use is a warning naming the default used;
// good settings give nothing. No file is changed.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   map[string]string
		fatal []string
		warn  []string
	}{
		{name: "nothing set"},
		{name: "good values", files: map[string]string{".env": "API_SERVER_PORT=8650\nAPI_SERVER_HOST=0.0.0.0\n", "config.yaml": "platforms:\n  api_server:\n    extra:\n      port: 8651\n"}},
		{name: "port from the environment", env: map[string]string{"API_SERVER_PORT": "abc"},
			fatal: []string{`API_SERVER_PORT="abc" (from the environment) is not a port (1-65535)`}},
		{name: "port from .env wins over the environment", files: map[string]string{".env": "API_SERVER_PORT=70000\n"}, env: map[string]string{"API_SERVER_PORT": "8642"},
			fatal: []string{`API_SERVER_PORT="70000" (from `, `/.env) is not a port`}},
		{name: "port from config.yaml", files: map[string]string{"config.yaml": "platforms:\n  api_server:\n    extra:\n      port: eighty\n"},
			fatal: []string{`config.yaml platforms.api_server.extra.port: "eighty" is not a port (1-65535)`}},
		{name: "config.yaml port of another type", files: map[string]string{"config.yaml": "platforms:\n  api_server:\n    extra:\n      port: [1, 2]\n"},
			fatal: []string{"is not a port"}},
		{name: "host that is a URL", env: map[string]string{"API_SERVER_HOST": "http://0.0.0.0:80"},
			fatal: []string{`API_SERVER_HOST="http://0.0.0.0:80" (from the environment): "http://0.0.0.0:80" is neither an IP address nor a host name`}},
		{name: "binary .env", files: map[string]string{".env": "API_SERVER_PORT=8642\n\x00\xff\xfe\n"},
			warn: []string{"is not text (NUL bytes or invalid UTF-8): only its KEY=VALUE lines are read"}},
		{name: "config.yaml that is not YAML", files: map[string]string{"config.yaml": "platforms: [unclosed\n"},
			warn: []string{"config.yaml is not valid YAML (", "the agent falls back to its defaults, and so does hermes-s6"}},
		{name: "config.yaml over 1 MiB", files: map[string]string{"config.yaml": "# " + strings.Repeat("x", maxFile+10) + "\n"},
			warn: []string{"hermes-s6 ignores it (the API server port is 8642 unless the environment sets one)"}},
		{name: ".env over 1 MiB", files: map[string]string{".env": "A=" + strings.Repeat("x", maxFile+10) + "\n"},
			warn: []string{"hermes-s6 ignores it (API server port and key from the environment, config.yaml or the defaults)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := profileDir(t, tc.files)
			before := snapshot(t, dir)
			var fatal, warn []string
			for _, p := range Check(dir, envFrom(tc.env)) {
				assert.Check(t, !strings.Contains(p.Msg, "\n"), "one line: %q", p.Msg)
				if p.Fatal {
					fatal = append(fatal, p.Msg)
				} else {
					warn = append(warn, p.Msg)
				}
			}
			assert.Check(t, is.Len(fatal, min(len(tc.fatal), 1)), "fatal: %q", fatal)
			assert.Check(t, is.Len(warn, min(len(tc.warn), 1)), "warnings: %q", warn)
			for _, want := range tc.fatal {
				assert.Check(t, len(fatal) == 1 && strings.Contains(fatal[0], want), "want %q in %q", want, fatal)
			}
			for _, want := range tc.warn {
				assert.Check(t, len(warn) == 1 && strings.Contains(warn[0], want), "want %q in %q", want, warn)
			}
			assert.Check(t, is.DeepEqual(snapshot(t, dir), before), "nothing changed")
		})
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		assert.NilError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

func TestValidHostAndPort(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "0.0.0.0", "::", "[::1]", "localhost", "gateway-1.internal", "a.b.c.", "x"} {
		assert.Check(t, ValidHost(h), h)
	}
	for _, h := range []string{"", "http://x", "host:80", "a b", "-bad", "bad-", "a..b", strings.Repeat("a", 64) + ".x", strings.Repeat("a.", 127) + "aa", "é.com"} {
		assert.Check(t, ValidHost(h) != nil, "%q", h)
	}
	for _, p := range []string{"1", "8642", "65535"} {
		assert.Check(t, ValidPort(p), p)
	}
	for _, p := range []string{"0", "65536", "-1", "abc", "", "86 42"} {
		assert.Check(t, ValidPort(p) != nil, "%q", p)
	}
}

func TestQuoteKeepsAValueOnOneShortLine(t *testing.T) {
	assert.Check(t, is.Equal(quote("a\nb"), `"a\nb"`))
	long := quote(strings.Repeat("z", 100))
	assert.Check(t, is.Equal(long, `"`+strings.Repeat("z", 64)+`\u2026"`))
}
