package standin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// runMain calls Main in-process. Only commands that return without
// serving may be run this way.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// oneLine asserts s is exactly one newline-terminated line and returns it.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	assert.Assert(t, strings.HasSuffix(s, "\n") && strings.Count(s, "\n") == 1, "want exactly one line, got %q", s)
	return strings.TrimSuffix(s, "\n")
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runMain(t, arg)
			assert.Equal(t, code, 0)
			assert.Equal(t, stderr, "")
			for _, want := range []string{
				"STAND-IN for the Hermes agent, for tests only",
				"gateway run [--replace]", "dashboard", "profile create NAME", "profile delete NAME", "profile list", "version",
				"POST /debug/crash", "code 70", "signal=KILL",
				"api_server_port", "stop_delay_ms", "fail_start", "HERMES_STANDIN_ENV_DUMP",
			} {
				assert.Check(t, is.Contains(stdout, want))
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runMain(t, "version")
	assert.Equal(t, code, 0)
	assert.Equal(t, stderr, "")
	assert.Equal(t, stdout, "hermes-agent-standin 0.1.0 (stand-in for the Hermes agent)\n")
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"-p", "work", "frobnicate", "x"}, {"--verbose"}} {
		code, stdout, stderr := runMain(t, args...)
		cmd := args[len(args)-1]
		if len(args) > 1 && args[0] == "-p" {
			cmd = args[2]
		}
		assert.Equal(t, code, 2, "args %q", args)
		assert.Equal(t, stdout, "")
		assert.Equal(t, oneLine(t, stderr), `hermes-agent-standin: unknown command "`+cmd+`"`)
	}
}

func TestNoCommandPrintsUsage(t *testing.T) {
	code, stdout, stderr := runMain(t)
	assert.Equal(t, code, 2)
	assert.Equal(t, stdout, "")
	assert.Check(t, is.Contains(stderr, "Usage:"))
}

func TestGatewayNeedsRun(t *testing.T) {
	code, _, stderr := runMain(t, "gateway", "start")
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(oneLine(t, stderr), `unknown command "gateway start"`))
}

func TestParseGlobalOptions(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		wantProfile string
		wantRest    []string
	}{
		{args: []string{"gateway", "run"}, wantProfile: "default", wantRest: []string{"gateway", "run"}},
		{args: []string{"-p", "work", "gateway", "run"}, wantProfile: "work", wantRest: []string{"gateway", "run"}},
		{args: []string{"--profile", "w2", "version"}, wantProfile: "w2", wantRest: []string{"version"}},
		{args: []string{"--profile=w_3", "gateway", "run", "--replace"}, wantProfile: "w_3", wantRest: []string{"gateway", "run", "--replace"}},
		{args: []string{"-p", "a", "-p", "b", "version"}, wantProfile: "b", wantRest: []string{"version"}},
		{args: []string{"-p", "default"}, wantProfile: "default", wantRest: []string{}},
	} {
		name, rest, err := parseGlobalOptions(tc.args)
		assert.NilError(t, err, "args %q", tc.args)
		assert.Equal(t, name, tc.wantProfile, "args %q", tc.args)
		assert.DeepEqual(t, rest, tc.wantRest)
	}

	code, _, stderr := runMain(t, "-p")
	assert.Equal(t, code, 2)
	assert.Equal(t, oneLine(t, stderr), "hermes-agent-standin: option -p needs a profile name")
}

func TestProfileNameValidation(t *testing.T) {
	valid := []string{"default", "a", "0", "work", "a-b_c", "9lives", strings.Repeat("x", 63)}
	for _, name := range valid {
		assert.Check(t, validateProfileName(name), "name %q", name)
	}
	invalid := []string{"", "A", "Work", "-a", "_a", "a.b", "a/b", "..", "../x", "a b", "é", strings.Repeat("x", 64)}
	for _, name := range invalid {
		t.Run("invalid/"+name, func(t *testing.T) {
			for _, args := range [][]string{
				{"-p", name, "gateway", "run"},
				{"--profile=" + name, "version"},
				{"profile", "create", name},
				{"profile", "delete", name},
			} {
				code, stdout, stderr := runMain(t, args...)
				assert.Equal(t, code, 2, "args %q", args)
				assert.Equal(t, stdout, "")
				line := oneLine(t, stderr)
				assert.Check(t, is.Contains(line, `invalid profile name "`+name+`"`))
				assert.Check(t, is.Contains(line, "^[a-z0-9][a-z0-9_-]{0,62}$"))
			}
		})
	}
}

func TestResolveProfile(t *testing.T) {
	t.Setenv("HERMES_HOME", "")
	p, err := resolveProfile("default")
	assert.NilError(t, err)
	assert.Equal(t, p.dir, "/opt/data")

	t.Setenv("HERMES_HOME", "/srv/hermes")
	p, err = resolveProfile("default")
	assert.NilError(t, err)
	assert.Equal(t, p.dir, "/srv/hermes")
	p, err = resolveProfile("work")
	assert.NilError(t, err)
	assert.Equal(t, p.dir, "/srv/hermes/profiles/work")
}

func TestProfileCreateListDelete(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	t.Setenv("HERMES_HOME", home)

	code, stdout, _ := runMain(t, "profile", "list")
	assert.Equal(t, code, 0)
	assert.Equal(t, stdout, "default\n")

	for _, name := range []string{"zeta", "alpha", "mid-1"} {
		code, _, stderr := runMain(t, "profile", "create", name)
		assert.Equal(t, code, 0, stderr)
	}
	info, err := os.Stat(filepath.Join(home, "profiles", "alpha"))
	assert.NilError(t, err)
	assert.Equal(t, info.Mode().Perm(), os.FileMode(0o750))
	assert.Assert(t, info.IsDir())
	cfg, err := os.ReadFile(filepath.Join(home, "profiles", "alpha", "config.yaml"))
	assert.NilError(t, err)
	assert.Equal(t, strings.Count(string(cfg), "\n"), 1)
	assert.Check(t, strings.HasPrefix(string(cfg), "#"), "config.yaml must hold a comment line only: %q", cfg)
	_, err = parseConfig(bytes.NewReader(cfg), "config.yaml")
	assert.NilError(t, err)

	// Stray entries that are not profiles stay out of the list.
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles", "notadir"), nil, 0o600))
	assert.NilError(t, os.Mkdir(filepath.Join(home, "profiles", "Upper"), 0o750))

	code, stdout, _ = runMain(t, "profile", "list")
	assert.Equal(t, code, 0)
	assert.Equal(t, stdout, "default\nalpha\nmid-1\nzeta\n")

	code, _, stderr := runMain(t, "profile", "create", "alpha")
	assert.Equal(t, code, 1)
	assert.Check(t, is.Contains(oneLine(t, stderr), `profile "alpha" already exists`))

	code, _, stderr = runMain(t, "profile", "create", "default")
	assert.Equal(t, code, 1)
	assert.Check(t, is.Contains(oneLine(t, stderr), `profile "default"`))

	code, _, stderr = runMain(t, "profile", "delete", "mid-1")
	assert.Equal(t, code, 0, stderr)
	_, err = os.Stat(filepath.Join(home, "profiles", "mid-1"))
	assert.Check(t, errors.Is(err, os.ErrNotExist))

	code, _, stderr = runMain(t, "profile", "delete", "mid-1")
	assert.Equal(t, code, 1)
	assert.Check(t, is.Contains(oneLine(t, stderr), `profile "mid-1" does not exist`))

	code, stdout, _ = runMain(t, "profile", "list")
	assert.Equal(t, code, 0)
	assert.Equal(t, stdout, "default\nalpha\nzeta\n")

	for _, args := range [][]string{{"profile"}, {"profile", "create"}, {"profile", "list", "x"}, {"profile", "rename", "a"}} {
		code, _, stderr := runMain(t, args...)
		assert.Equal(t, code, 2, "args %q", args)
		oneLine(t, stderr)
	}
}

func TestParseConfigValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want config
	}{
		{name: "empty", text: "", want: config{}},
		{name: "comments and blanks", text: "# hello\n\n   \n  # indented comment\n", want: config{}},
		{name: "all keys", text: "api_server_port: 9000\nstop_delay_ms: 250\nfail_start: false\n",
			want: config{port: 9000, stopDelay: 250 * time.Millisecond}},
		{name: "fail_start true", text: "fail_start: true\n", want: config{failStart: true}},
		{name: "quoted and commented", text: "api_server_port: \"8100\" # main port\nstop_delay_ms: '0'\n",
			want: config{port: 8100}},
		{name: "trailing comment", text: "stop_delay_ms: 10   # ms\n", want: config{stopDelay: 10 * time.Millisecond}},
		{name: "CRLF", text: "api_server_port: 1\r\nfail_start: false\r\n", want: config{port: 1}},
		{name: "unknown keys", text: "model: gpt-x\nlog.level: debug\nempty:\nurl: http://example.invalid/a#b\n", want: config{}},
		{name: "tab after colon", text: "api_server_port:\t65535\n", want: config{port: 65535}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(strings.NewReader(tc.text), "config.yaml")
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestParseConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		wantLine int
		wantMsg  string
	}{
		{name: "no colon", text: "# ok\njust words\n", wantLine: 2, wantMsg: `expected "key: value"`},
		{name: "indented", text: "a: 1\n  b: 2\n", wantLine: 2, wantMsg: "nesting is not supported"},
		{name: "nested block", text: "gateway:\n  port: 1\n", wantLine: 2, wantMsg: "nesting"},
		{name: "list item", text: "- a\n", wantLine: 1, wantMsg: `expected "key: value"`},
		{name: "document marker", text: "---\n", wantLine: 1, wantMsg: `expected "key: value"`},
		{name: "no space after colon", text: "a:1\n", wantLine: 1, wantMsg: "expected a space"},
		{name: "key with space", text: "my key: 1\n", wantLine: 1, wantMsg: "invalid key"},
		{name: "empty key", text: ": 1\n", wantLine: 1, wantMsg: "invalid key"},
		{name: "flow mapping", text: "a: {b: 1}\n", wantLine: 1, wantMsg: "only plain scalars"},
		{name: "flow sequence", text: "a: [1, 2]\n", wantLine: 1, wantMsg: "only plain scalars"},
		{name: "block scalar", text: "a: |\n", wantLine: 1, wantMsg: "only plain scalars"},
		{name: "inline mapping", text: "a: b: c\n", wantLine: 1, wantMsg: "nested mappings"},
		{name: "unterminated quote", text: "a: \"x\n", wantLine: 1, wantMsg: "unterminated"},
		{name: "text after quote", text: "a: 'x' y\n", wantLine: 1, wantMsg: "after quoted value"},
		{name: "duplicate key", text: "a: 1\n\na: 2\n", wantLine: 3, wantMsg: "first set on line 1"},
		{name: "port not a number", text: "api_server_port: http\n", wantLine: 1, wantMsg: "api_server_port"},
		{name: "port zero", text: "api_server_port: 0\n", wantLine: 1, wantMsg: "1..65535"},
		{name: "port too big", text: "\napi_server_port: 65536\n", wantLine: 2, wantMsg: "1..65535"},
		{name: "port empty", text: "api_server_port:\n", wantLine: 1, wantMsg: "api_server_port"},
		{name: "negative delay", text: "stop_delay_ms: -1\n", wantLine: 1, wantMsg: "stop_delay_ms"},
		{name: "fractional delay", text: "stop_delay_ms: 1.5\n", wantLine: 1, wantMsg: "stop_delay_ms"},
		{name: "overflowing delay", text: "stop_delay_ms: 99999999999999999\n", wantLine: 1, wantMsg: "stop_delay_ms"},
		{name: "fail_start yes", text: "fail_start: yes\n", wantLine: 1, wantMsg: "fail_start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(strings.NewReader(tc.text), "/p/config.yaml")
			var cerr *configError
			assert.Assert(t, errors.As(err, &cerr), "want a configError, got %v", err)
			assert.Equal(t, cerr.line, tc.wantLine)
			assert.Check(t, is.Contains(err.Error(), tc.wantMsg))
			assert.Check(t, strings.HasPrefix(err.Error(), "invalid config /p/config.yaml:"), err.Error())
		})
	}
}

// TestGatewayRefusesToStart covers the exits that happen before the gateway
// listens, so Main can run in-process.
func TestGatewayRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		profile  string
		config   string // written to the profile's config.yaml unless empty
		env      map[string]string
		wantCode int
		wantMsg  string
	}{
		{name: "invalid line", profile: "default", config: "api_server_port: 9000\nnot yaml at all\n",
			wantCode: 78, wantMsg: "config.yaml:2: "},
		{name: "bad port value", profile: "work", config: "# c\n\napi_server_port: 70000\n",
			wantCode: 78, wantMsg: "config.yaml:3: "},
		{name: "bad delay value", profile: "work", config: "stop_delay_ms: soon\n",
			wantCode: 78, wantMsg: "config.yaml:1: "},
		{name: "fail_start", profile: "default", config: "fail_start: true\n",
			wantCode: 78, wantMsg: "fail_start: true, refusing to start"},
		{name: "missing profile", profile: "ghost",
			wantCode: 78, wantMsg: `profile "ghost" does not exist`},
		{name: "bad API_SERVER_PORT", profile: "default", env: map[string]string{"API_SERVER_PORT": "eighty"},
			wantCode: 78, wantMsg: "invalid API_SERVER_PORT"},
		{name: "extra argument", profile: "default",
			wantCode: 2, wantMsg: `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HERMES_HOME", home)
			t.Setenv("API_SERVER_HOST", "127.0.0.1")
			t.Setenv("API_SERVER_PORT", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dir := home
			if tc.profile != "default" && tc.profile != "ghost" {
				dir = filepath.Join(home, "profiles", tc.profile)
				assert.NilError(t, os.MkdirAll(dir, 0o750))
			}
			if tc.config != "" {
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tc.config), 0o640))
			}
			args := []string{"-p", tc.profile, "gateway", "run"}
			if tc.name == "extra argument" {
				args = append(args, "now")
			}

			code, stdout, stderr := runMain(t, args...)
			assert.Equal(t, code, tc.wantCode)
			assert.Equal(t, stdout, "")
			line := oneLine(t, stderr)
			assert.Check(t, is.Contains(line, tc.wantMsg))
			assert.Check(t, strings.HasPrefix(line, "hermes-agent-standin: "), line)
			_, err := os.Stat(filepath.Join(dir, pidFileName))
			assert.Check(t, errors.Is(err, os.ErrNotExist), "no pid file may be written")
		})
	}
}

func TestDefaultProfileDirIsCreated(t *testing.T) {
	home := filepath.Join(t.TempDir(), "new", "home")
	t.Setenv("HERMES_HOME", home)
	assert.NilError(t, (profile{name: "default", dir: home}).ensureDir())
	info, err := os.Stat(home)
	assert.NilError(t, err)
	assert.Assert(t, info.IsDir())
}

func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), pidFileName)
	assert.NilError(t, writePidFile(path, 4242))
	pid, err := readPidFile(path)
	assert.NilError(t, err)
	assert.Equal(t, pid, 4242)

	// Another instance's pid file is left alone.
	assert.NilError(t, removeOwnPidFile(path, 1))
	_, err = os.Stat(path)
	assert.NilError(t, err)

	assert.NilError(t, removeOwnPidFile(path, 4242))
	_, err = os.Stat(path)
	assert.Check(t, errors.Is(err, os.ErrNotExist))

	assert.NilError(t, os.WriteFile(path, []byte("nonsense\n"), 0o644))
	_, err = readPidFile(path)
	assert.ErrorContains(t, err, "does not hold a pid")

	entries, err := os.ReadDir(filepath.Dir(path))
	assert.NilError(t, err)
	assert.Equal(t, len(entries), 1, "temporary files must not be left behind")
}
