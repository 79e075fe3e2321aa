package standin

// In-process tests: everything that returns without serving.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeSys is a System on a temporary root with recorded program runs and
// execs.
type fakeSys struct {
	*System
	stdout, stderr bytes.Buffer
	root           string
	runs           [][]string
	execs          [][]string
	// answers maps a program's base name to its exit code and stderr.
	answers map[string]answer
	execErr error
}

type answer struct {
	code   int
	stderr string
	err    error
}

func newFakeSys(t *testing.T, env ...string) *fakeSys {
	t.Helper()
	f := &fakeSys{root: t.TempDir(), answers: map[string]answer{}}
	f.System = &System{
		Args0:   "/opt/hermes/bin/hermes-agent",
		Environ: append([]string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}, env...),
		Stdin:   strings.NewReader(""),
		Stdout:  &f.stdout,
		Stderr:  &f.stderr,
		Root:    f.root,
		Run: func(argv []string) (int, string, string, error) {
			f.runs = append(f.runs, argv)
			a := f.answers[filepath.Base(argv[0])]
			return a.code, "", a.stderr, a.err
		},
		Exec: func(name string, argv, env []string) error {
			f.execs = append(f.execs, append([]string{name}, argv...))
			return f.execErr
		},
		Block: func() int { return 143 },
	}
	return f
}

// underS6 makes the fake root look like a container with s6-svscan as PID 1.
func (f *fakeSys) underS6(t *testing.T) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "proc/1"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(f.root, "proc/1/comm"), []byte("s6-svscan\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/s6/basedir"), 0o755))
	assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service"), 0o755))
}

func (f *fakeSys) main(args ...string) int { return f.Main(args) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	assert.NilError(t, os.WriteFile(path, []byte(content), 0o644))
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	var m map[string]any
	assert.NilError(t, json.Unmarshal(b, &m), "%s: %s", path, b)
	return m
}

func TestHelpNamesEveryContractPointAndHook(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		f := newFakeSys(t)
		assert.Equal(t, f.main(arg), 0)
		out := f.stdout.String()
		for _, want := range []string{
			"STAND-IN for the Hermes agent, for tests only", AgentRef,
			"gateway/platforms/api_server.py", "gateway/config.py", "hermes_cli/env_loader.py",
			"_maybe_redirect_run_to_s6_supervision", "gateway/status.py", "gateway/restart.py",
			"create_profile", "delete_profile", "web_server.py", "_scan_profile_flag",
			"standin:", "stop_delay_ms", "fail_start", "POST /debug/crash", "signal=KILL", "HERMES_STANDIN_ENV_DUMP",
		} {
			assert.Check(t, is.Contains(out, want), "help for %s", arg)
		}
	}
}

func TestVersionAndBadCommandLines(t *testing.T) {
	f := newFakeSys(t)
	assert.Equal(t, f.main("version"), 0)
	assert.Check(t, is.Contains(f.stdout.String(), "stand-in for the Hermes agent"))

	for _, args := range [][]string{{"frobnicate"}, {"gateway"}, {"gateway", "start"}, {"gateway", "run", "--bogus"},
		{"profile"}, {"profile", "rename", "x"}, {"dashboard", "--port", "x"}, {"dashboard", "--port", "70000"}, {"dashboard", "--host"},
		{"-p", "Bad Name", "gateway", "run"}, {"-p"}} {
		f := newFakeSys(t, "HERMES_HOME="+t.TempDir())
		assert.Equal(t, f.main(args...), 2, "args %q: %s", args, f.stderr.String())
		assert.Check(t, is.Contains(f.stderr.String(), "error:"), "args %q", args)
	}
	f = newFakeSys(t)
	assert.Equal(t, f.main(), 2)
	assert.Check(t, is.Contains(f.stderr.String(), "Usage:"))
}

func TestScanProfileFlag(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		name     string
		consumed int
	}{
		{[]string{"-p", "work", "gateway", "run"}, "work", 2},
		{[]string{"gateway", "run", "--profile", "work"}, "work", 2},
		{[]string{"gateway", "--profile=Work", "run"}, "Work", 1}, // validated later
		{[]string{"gateway", "run", "--", "-p", "work"}, "", 0},
		{[]string{"-p", "Work", "gateway"}, "", 0}, // not a name: left for the parser
		{[]string{"-p"}, "", 0},
		{[]string{"-p", strings.Repeat("a", 64)}, strings.Repeat("a", 64), 2},
		{[]string{"-p", strings.Repeat("a", 65)}, "", 0},
	} {
		name, consumed, _ := scanProfileFlag(tc.args)
		assert.Check(t, is.Equal(name, tc.name), "args %q", tc.args)
		assert.Check(t, is.Equal(consumed, tc.consumed), "args %q", tc.args)
	}
}

func TestResolveProfile(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "profiles", "work"), 0o755))
	for _, tc := range []struct {
		name    string
		home    string // HERMES_HOME
		args    []string
		profile string
		want    string // resolved home
		rest    []string
	}{
		{"no flag", root, []string{"gateway", "run"}, "default", root, []string{"gateway", "run"}},
		{"flag anywhere", root, []string{"gateway", "-p", "work", "run"}, "work", filepath.Join(root, "profiles", "work"), []string{"gateway", "run"}},
		{"--profile=", root, []string{"--profile=work", "gateway", "run"}, "work", filepath.Join(root, "profiles", "work"), []string{"gateway", "run"}},
		{"normalised", root, []string{"--profile= Work ", "profile", "list"}, "work", filepath.Join(root, "profiles", "work"), []string{"profile", "list"}},
		{"default by name", root, []string{"-p", "default", "profile", "list"}, "default", root, []string{"profile", "list"}},
		{"profile-shaped HERMES_HOME trusted", filepath.Join(root, "profiles", "work"), []string{"gateway", "run"}, "work", filepath.Join(root, "profiles", "work"), []string{"gateway", "run"}},
		{"root from a profile-shaped HERMES_HOME", filepath.Join(root, "profiles", "work"), []string{"-p", "default", "x"}, "default", root, []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSys(t)
			env := newEnviron([]string{"HERMES_HOME=" + tc.home})
			inv, _, ok := f.resolveProfile(tc.args, env)
			assert.Assert(t, ok, f.stderr.String())
			assert.Check(t, is.Equal(inv.profile, tc.profile))
			assert.Check(t, is.Equal(inv.home, tc.want))
			assert.Check(t, is.Equal(inv.root, root))
			assert.Check(t, is.DeepEqual(inv.args, tc.rest))
		})
	}
}

func TestProfileErrors(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-p", "nope", "gateway", "run"}, "Error: Profile 'nope' does not exist. Create it with: hermes profile create nope\n"},
		{[]string{"--profile=nope", "profile", "list"}, "Error: Profile 'nope' does not exist. Create it with: hermes profile create nope\n"},
		{[]string{"-p", "test", "gateway", "run"}, "Error: Profile name 'test' is reserved — it collides with either the Hermes installation itself or a common system binary.  Pick a different name.\n"},
		{[]string{"--profile=a/b", "gateway", "run"}, "Error: Invalid profile name 'a/b'. Must match [a-z0-9][a-z0-9_-]{0,63}\n"},
		{[]string{"--profile=", "gateway", "run"}, "Error: profile name cannot be empty\n"},
	} {
		f := newFakeSys(t, "HERMES_HOME="+root)
		assert.Check(t, is.Equal(f.main(tc.args...), 1), "args %q", tc.args)
		assert.Check(t, is.Equal(f.stderr.String(), tc.err), "args %q", tc.args)
		assert.Check(t, is.Equal(f.stdout.String(), ""))
	}
}

func TestActiveProfileIsStickyExceptUnderASupervisor(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "profiles", "work"), 0o755))
	writeFile(t, filepath.Join(root, "active_profile"), "work\n")
	f := newFakeSys(t)
	inv, _, ok := f.resolveProfile([]string{"gateway", "run"}, newEnviron([]string{"HERMES_HOME=" + root}))
	assert.Assert(t, ok)
	assert.Check(t, is.Equal(inv.profile, "work"))
	for _, marker := range []string{"HERMES_S6_SUPERVISED_CHILD=1", "HERMES_SUPERVISED_CHILD=1", "INVOCATION_ID=x", "HERMES_GATEWAY_EXTERNAL_SUPERVISOR=yes"} {
		inv, _, ok := f.resolveProfile([]string{"gateway", "run"}, newEnviron([]string{"HERMES_HOME=" + root, marker}))
		assert.Assert(t, ok)
		assert.Check(t, is.Equal(inv.profile, "default"), marker)
	}
}

func TestDotenv(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	writeFile(t, path, "\ufeff# comment\n\nPLAIN=value # trailing comment\nexport EXPORTED=yes\nSQ='single # kept'\n"+
		"DQ=\"a\\nb \\\"q\\\"\"\nEMPTY=\nNOEQUALS\n  SPACED  =  padded  \nHASH=a#b\n1BAD=x\n")
	got := map[string]string{}
	for _, p := range loadDotenv(path) {
		got[p.key] = p.value
	}
	assert.DeepEqual(t, got, map[string]string{
		"PLAIN": "value", "EXPORTED": "yes", "SQ": "single # kept", "DQ": "a\nb \"q\"",
		"EMPTY": "", "SPACED": "padded", "HASH": "a#b",
	})
	assert.Check(t, is.Len(loadDotenv(filepath.Join(t.TempDir(), "missing")), 0))
}

func TestAPIServerResolution(t *testing.T) {
	key := "0123456789abcdef" // 16 characters: usable
	cfg := func(s string) map[string]any {
		path := filepath.Join(t.TempDir(), "config.yaml")
		writeFile(t, path, s)
		doc, _, err := loadYAML(path)
		assert.NilError(t, err)
		return doc
	}
	for _, tc := range []struct {
		name    string
		doc     map[string]any
		env     []string
		enabled bool
		refused bool
		host    string
		port    int
	}{
		{"nothing", nil, nil, false, false, "127.0.0.1", 8642},
		{"usable key", nil, []string{"API_SERVER_KEY=" + key}, true, false, "127.0.0.1", 8642},
		{"short key", nil, []string{"API_SERVER_KEY=0123456789abcde"}, false, false, "127.0.0.1", 8642},
		{"padded short key", nil, []string{"API_SERVER_KEY=   0123456789abcde   "}, false, false, "127.0.0.1", 8642},
		{"enabled without key", nil, []string{"API_SERVER_ENABLED=TRUE"}, true, true, "127.0.0.1", 8642},
		{"enabled with short key", nil, []string{"API_SERVER_ENABLED=1", "API_SERVER_KEY=short"}, true, true, "127.0.0.1", 8642},
		{"env host and port", nil, []string{"API_SERVER_KEY=" + key, "API_SERVER_HOST=0.0.0.0", "API_SERVER_PORT=9001"}, true, false, "0.0.0.0", 9001},
		{"config port", cfg("platforms:\n  api_server:\n    extra:\n      port: 9100\n"), []string{"API_SERVER_KEY=" + key}, true, false, "127.0.0.1", 9100},
		{"env port beats config", cfg("platforms:\n  api_server:\n    extra:\n      port: 9100\n"), []string{"API_SERVER_KEY=" + key, "API_SERVER_PORT=9200"}, true, false, "127.0.0.1", 9200},
		{"bad env port: config", cfg("platforms:\n  api_server:\n    extra: {port: 9100}\n"), []string{"API_SERVER_KEY=" + key, "API_SERVER_PORT=eighty"}, true, false, "127.0.0.1", 9100},
		{"bad env port: default", nil, []string{"API_SERVER_KEY=" + key, "API_SERVER_PORT=eighty"}, true, false, "127.0.0.1", 8642},
		{"bad config port: default", cfg("platforms:\n  api_server:\n    extra: {port: soon}\n"), []string{"API_SERVER_KEY=" + key}, true, false, "127.0.0.1", 8642},
		{"block-level port bridged", cfg("platforms:\n  api_server:\n    port: \"9300\"\n"), []string{"API_SERVER_KEY=" + key}, true, false, "127.0.0.1", 9300},
		{"explicit enabled: false wins over the key", cfg("platforms:\n  api_server:\n    enabled: false\n"), []string{"API_SERVER_KEY=" + key}, false, false, "127.0.0.1", 8642},
		{"enabled: no", cfg("platforms:\n  api_server:\n    enabled: no\n"), []string{"API_SERVER_KEY=" + key, "API_SERVER_ENABLED=true"}, false, false, "127.0.0.1", 8642},
		{"config enabled, config key", cfg("platforms:\n  api_server:\n    enabled: true\n    extra: {key: " + key + ", host: 0.0.0.0}\n"), nil, true, false, "0.0.0.0", 8642},
		{"config enabled, no key", cfg("platforms:\n  api_server:\n    enabled: true\n"), nil, true, true, "127.0.0.1", 8642},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if doc == nil {
				doc = map[string]any{}
			}
			a := resolveAPIServer(doc, newEnviron(tc.env), "default")
			assert.Check(t, is.Equal(a.enabled, tc.enabled))
			assert.Check(t, is.Equal(a.refused(), tc.refused))
			assert.Check(t, is.Equal(a.host, tc.host))
			assert.Check(t, is.Equal(a.port, tc.port))
		})
	}
}

func TestConfigYAMLAndHooks(t *testing.T) {
	dir := t.TempDir()
	_, ok, err := loadYAML(filepath.Join(dir, "missing.yaml"))
	assert.Check(t, !ok && err == nil)
	for _, bad := range []string{"this is: not: valid\n  - nested\n", "not: valid: yaml\n", "- a list\n", "just a string\n"} {
		writeFile(t, filepath.Join(dir, "bad.yaml"), bad)
		_, _, err := loadYAML(filepath.Join(dir, "bad.yaml"))
		assert.Check(t, err != nil, "%q must not load", bad)
	}
	writeFile(t, filepath.Join(dir, "empty.yaml"), "# nothing\n")
	doc, ok, err := loadYAML(filepath.Join(dir, "empty.yaml"))
	assert.Check(t, ok && err == nil && len(doc) == 0)

	h, err := standinHooks(map[string]any{"standin": map[string]any{"stop_delay_ms": 250, "fail_start": true}})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(h.stopDelay, 250*time.Millisecond))
	assert.Check(t, h.failStart)
	h, err = standinHooks(map[string]any{"model": "x"})
	assert.NilError(t, err)
	assert.Check(t, h == hooks{})
	for _, bad := range []map[string]any{
		{"standin": "yes"},
		{"standin": map[string]any{"stop_delay_ms": -1}},
		{"standin": map[string]any{"stop_delay_ms": "500"}},
		{"standin": map[string]any{"fail_start": "true"}},
		{"standin": map[string]any{"stop_delay": 5}},
	} {
		_, err := standinHooks(bad)
		assert.Check(t, err != nil, "%v must be refused", bad)
	}
}

func TestRedirectDetection(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s6       bool
		comm     string
		basedir  bool
		env      []string
		flags    []string
		redirect bool
	}{
		{"s6", true, "s6-svscan\n", true, nil, nil, true},
		{"not PID 1 s6", true, "tini\n", true, nil, nil, false},
		{"no basedir", true, "s6-svscan\n", false, nil, nil, false},
		{"no /proc/1/comm", false, "", false, nil, nil, false},
		{"--no-supervise", true, "s6-svscan\n", true, nil, []string{"--no-supervise"}, false},
		{"NO_SUPERVISE=1", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE=1"}, nil, false},
		{"NO_SUPERVISE=YES", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE=YES"}, nil, false},
		{"NO_SUPERVISE=True", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE=True"}, nil, false},
		{"NO_SUPERVISE=on is not an opt-out", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE=on"}, nil, true},
		{"NO_SUPERVISE=0", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE=0"}, nil, true},
		{"NO_SUPERVISE=' 1'", true, "s6-svscan\n", true, []string{"HERMES_GATEWAY_NO_SUPERVISE= 1"}, nil, true},
		{"supervised child", true, "s6-svscan\n", true, []string{"HERMES_S6_SUPERVISED_CHILD=1"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			f := newFakeSys(t, append([]string{"HERMES_HOME=" + home}, tc.env...)...)
			if tc.s6 {
				writeFile(t, filepath.Join(f.root, "proc/1/comm"), tc.comm)
			}
			if tc.basedir {
				assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/s6/basedir"), 0o755))
			}
			assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service/gateway-default"), 0o755))
			inv, _, ok := f.resolveProfile(append([]string{"gateway", "run"}, tc.flags...), newEnviron(f.Environ))
			assert.Assert(t, ok)
			fl, _, err := parseRunFlags(inv.args[2:])
			assert.NilError(t, err)
			code, done := f.redirectToS6(inv, fl.noSupervise)
			assert.Check(t, is.Equal(done, tc.redirect))
			if tc.redirect {
				assert.Check(t, is.Equal(code, 0))
				assert.Check(t, is.Len(f.execs, 1))
			} else {
				assert.Check(t, is.Len(f.runs, 0))
			}
		})
	}
}

func TestRedirectStartsTheSlotAndRecordsDesiredState(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "profiles", "work")
	assert.NilError(t, os.MkdirAll(work, 0o755))
	writeFile(t, filepath.Join(work, runtimeStatusFile), `{"gateway_state":"stopped","pid":7,"extra":{"keep":[1,2]},"updated_at":"2020-01-01T00:00:00+00:00"}`)
	f := newFakeSys(t, "HERMES_HOME="+root)
	f.underS6(t)
	assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service/gateway-work"), 0o755))

	before := time.Now().Unix()
	assert.Equal(t, f.main("-p", "work", "gateway", "run", "-v"), 0)
	assert.DeepEqual(t, f.runs, [][]string{{filepath.Join(f.root, "command/s6-svc"), "-u", filepath.Join(f.root, "run/service/gateway-work")}})
	assert.DeepEqual(t, f.execs, [][]string{{"sleep", "sleep", "infinity"}})
	assert.Equal(t, f.stderr.String(), Breadcrumb)
	assert.Equal(t, f.stdout.String(), "")

	b, err := os.ReadFile(filepath.Join(work, runtimeStatusFile))
	assert.NilError(t, err)
	assert.Check(t, strings.HasSuffix(string(b), "}\n"))
	st := readJSON(t, filepath.Join(work, runtimeStatusFile))
	assert.Check(t, is.Equal(st["desired_state"], "running"))
	assert.Check(t, is.Equal(st["gateway_state"], "stopped"), "other keys are kept")
	assert.Check(t, is.DeepEqual(st["extra"], map[string]any{"keep": []any{1.0, 2.0}}))
	updated, isNum := st["updated_at"].(float64)
	assert.Check(t, isNum && updated >= float64(before), "updated_at is Unix seconds: %v", st["updated_at"])
}

func TestRedirectFailures(t *testing.T) {
	t.Run("missing slot", func(t *testing.T) {
		f := newFakeSys(t, "HERMES_HOME="+t.TempDir())
		f.underS6(t)
		assert.Equal(t, f.main("gateway", "run"), 1)
		assert.Equal(t, f.stdout.String(), "✗ no such gateway 'default': register it with `hermes profile create default` first, or pass an existing profile name via `-p <name>`\n")
		assert.Check(t, is.Len(f.runs, 0))
		assert.Check(t, is.Len(f.execs, 0))
	})
	t.Run("s6-svc fails", func(t *testing.T) {
		home := t.TempDir()
		f := newFakeSys(t, "HERMES_HOME="+home)
		f.underS6(t)
		assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service/gateway-default"), 0o755))
		f.answers["s6-svc"] = answer{code: 111, stderr: "s6-svc: fatal: unable to control: Permission denied\n"}
		assert.Equal(t, f.main("gateway", "run"), 1)
		assert.Equal(t, f.stdout.String(), "✗ s6-svc start on 'gateway-default' failed (rc=111): s6-svc: fatal: unable to control: Permission denied\n")
		assert.Check(t, is.Len(f.execs, 0))
		_, err := os.Stat(filepath.Join(home, runtimeStatusFile))
		assert.Check(t, errors.Is(err, os.ErrNotExist), "no desired state when the start failed")
	})
	t.Run("sleep cannot be exec'd", func(t *testing.T) {
		f := newFakeSys(t, "HERMES_HOME="+t.TempDir())
		f.underS6(t)
		assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service/gateway-default"), 0o755))
		f.execErr = errors.New("exec: \"sleep\": executable file not found in $PATH")
		assert.Equal(t, f.main("gateway", "run"), 143)
		assert.Check(t, is.Contains(f.stderr.String(), "`sleep` is unavailable"))
	})
}

func TestRunFlags(t *testing.T) {
	f, help, err := parseRunFlags([]string{"--replace", "--force", "--no-supervise", "-vv", "--verbose", "-q", "--accept-hooks", "--external-supervisor"})
	assert.NilError(t, err)
	assert.Check(t, !help)
	assert.Check(t, f == runFlags{replace: true, force: true, noSupervise: true, quiet: true, acceptHooks: true, externalSupervisor: true, verbose: 3}, "%+v", f)
	_, help, _ = parseRunFlags([]string{"-h"})
	assert.Check(t, help)
	for _, bad := range []string{"--replace=yes", "-x", "--verbose2", "run"} {
		_, _, err := parseRunFlags([]string{bad})
		assert.Check(t, err != nil, bad)
	}
}

func TestProfileCreate(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "config.yaml"), "# root\nmodel:\n  provider: openrouter   # the provider\n  default: some/model\nplatforms:\n  api_server: {enabled: true}\n")
	f := newFakeSys(t, "HERMES_HOME="+root)
	assert.Equal(t, f.main("profile", "create", "Work"), 0, f.stdout.String())
	dir := filepath.Join(root, "profiles", "work")
	assert.Equal(t, f.stdout.String(), "\nProfile 'Work' created at "+dir+"\n")
	for _, d := range profileDirs {
		assert.Check(t, isDir(filepath.Join(dir, d)), d)
	}
	st, err := os.Stat(filepath.Join(dir, ".env"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o600)))
	env, _ := os.ReadFile(filepath.Join(dir, ".env"))
	assert.Check(t, strings.HasPrefix(string(env), "#"), "a placeholder header only")
	assert.Check(t, is.Len(loadDotenv(filepath.Join(dir, ".env")), 0))
	_, err = os.Stat(filepath.Join(dir, "SOUL.md"))
	assert.NilError(t, err)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(cfg), "model:\n  provider: openrouter\n  default: some/model\n"), "only the model block is copied")
	entries, _ := os.ReadDir(filepath.Join(root, "profiles"))
	assert.Check(t, is.Len(entries, 1), "no staging directory is left behind")
	assert.Check(t, is.Len(f.runs, 0), "no s6: no registration")

	// Without a model block there is no config.yaml; --no-skills writes the marker.
	f = newFakeSys(t, "HERMES_HOME="+root)
	assert.NilError(t, os.Remove(filepath.Join(root, "config.yaml")))
	assert.Equal(t, f.main("profile", "create", "bare", "--no-skills", "--no-alias"), 0)
	_, err = os.Stat(filepath.Join(root, "profiles", "bare", "config.yaml"))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	_, err = os.Stat(filepath.Join(root, "profiles", "bare", ".no-bundled-skills"))
	assert.NilError(t, err)

	// A leftover staging directory of this pid is replaced.
	stale := filepath.Join(root, "profiles", ".fresh.staging-"+strconv.Itoa(os.Getpid()))
	writeFile(t, filepath.Join(stale, "junk"), "x")
	f = newFakeSys(t, "HERMES_HOME="+root)
	assert.Equal(t, f.main("profile", "create", "fresh"), 0)
	_, err = os.Stat(filepath.Join(root, "profiles", "fresh", "junk"))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	_, err = os.Stat(stale)
	assert.Check(t, errors.Is(err, os.ErrNotExist))
}

func TestProfileCreateRefusals(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "profiles", "taken"), 0o755))
	for _, tc := range []struct {
		name, out string
	}{
		{"default", "Error: Cannot create a profile named 'default' — it is the built-in profile (~/.hermes).\n"},
		{"DEFAULT", "Error: Cannot create a profile named 'default' — it is the built-in profile (~/.hermes).\n"},
		{"taken", "Error: Profile 'taken' already exists at " + filepath.Join(root, "profiles", "taken") + "\n"},
		{"root", "Error: Profile name 'root' is reserved — it collides with either the Hermes installation itself or a common system binary.  Pick a different name.\n"},
		{"-bad", ""}, // an option to the parser: exit 2
		{"a.b", "Error: Invalid profile name 'a.b'. Must match [a-z0-9][a-z0-9_-]{0,63}\n"},
		{strings.Repeat("x", 65), "Error: Invalid profile name '" + strings.Repeat("x", 65) + "'. Must match [a-z0-9][a-z0-9_-]{0,63}\n"},
	} {
		f := newFakeSys(t, "HERMES_HOME="+root)
		code := f.main("profile", "create", tc.name)
		if tc.out == "" {
			assert.Check(t, is.Equal(code, 2), tc.name)
			continue
		}
		assert.Check(t, is.Equal(code, 1), tc.name)
		assert.Check(t, is.Equal(f.stdout.String(), tc.out), tc.name)
	}
}

func TestProfileCreateRegistersTheS6Slot(t *testing.T) {
	root := t.TempDir()
	f := newFakeSys(t, "HERMES_HOME="+root)
	f.underS6(t)
	assert.Equal(t, f.main("profile", "create", "work"), 0, f.stdout.String())
	assert.Equal(t, f.stdout.String(), "\nProfile 'work' created at "+filepath.Join(root, "profiles", "work")+"\n")
	scan := filepath.Join(f.root, "run/service")
	assert.DeepEqual(t, f.runs, [][]string{{filepath.Join(f.root, "command/s6-svscanctl"), "-a", scan}})
	slot := filepath.Join(scan, "gateway-work")
	for _, p := range []string{"type", "run", "finish", "log/run", "down", "event", "supervise/event", "log/supervise/control"} {
		_, err := os.Lstat(filepath.Join(slot, p))
		assert.Check(t, err, p)
	}
	typ, _ := os.ReadFile(filepath.Join(slot, "type"))
	assert.Check(t, is.Equal(string(typ), "longrun\n"))
	run, _ := os.ReadFile(filepath.Join(slot, "run"))
	assert.Check(t, is.Contains(string(run), "export HERMES_S6_SUPERVISED_CHILD=1\n"))
	assert.Check(t, is.Contains(string(run), "exec s6-setuidgid hermes hermes -p work gateway run --replace\n"))
	finish, _ := os.ReadFile(filepath.Join(slot, "finish"))
	assert.Check(t, is.Contains(string(finish), `if [ "$1" = "78" ]; then`))
	st, err := os.Lstat(filepath.Join(slot, "supervise/control"))
	assert.NilError(t, err)
	assert.Check(t, st.Mode()&os.ModeNamedPipe != 0)
	st, _ = os.Stat(filepath.Join(slot, "run"))
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o755)))
	entries, _ := os.ReadDir(scan)
	assert.Check(t, is.Len(entries, 1), "no .tmp slot left behind")

	// Already registered: silent. s6-svscanctl failing: printed, the slot is
	// removed again, the create still succeeds.
	f = newFakeSys(t, "HERMES_HOME="+root)
	f.root = filepath.Dir(filepath.Dir(scan))
	f.Root = f.root
	assert.NilError(t, os.MkdirAll(filepath.Join(scan, "gateway-again"), 0o755))
	assert.Equal(t, f.main("profile", "create", "again"), 0)
	assert.Check(t, !strings.Contains(f.stdout.String(), "⚠"), f.stdout.String())

	f = newFakeSys(t, "HERMES_HOME="+root)
	f.Root, f.root = filepath.Dir(filepath.Dir(scan)), filepath.Dir(filepath.Dir(scan))
	f.answers["s6-svscanctl"] = answer{code: 111, stderr: "s6-svscanctl: fatal: unable to control /run/service: supervisor not listening"}
	assert.Equal(t, f.main("profile", "create", "broken"), 0)
	assert.Equal(t, f.stdout.String(), "⚠ Could not register s6 gateway service: s6-svscanctl failed: s6-svscanctl: fatal: unable to control /run/service: supervisor not listening\n"+
		"\nProfile 'broken' created at "+filepath.Join(root, "profiles", "broken")+"\n")
	_, err = os.Lstat(filepath.Join(scan, "gateway-broken"))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	assert.Check(t, isDir(filepath.Join(root, "profiles", "broken")))

	f = newFakeSys(t, "HERMES_HOME="+root)
	f.Root, f.root = filepath.Dir(filepath.Dir(scan)), filepath.Dir(filepath.Dir(scan))
	f.answers["s6-svscanctl"] = answer{err: errors.New("fork/exec /command/s6-svscanctl: no such file or directory")}
	assert.Equal(t, f.main("profile", "create", "noprog"), 0)
	assert.Check(t, is.Contains(f.stdout.String(), "⚠ Could not register s6 gateway service: fork/exec"))
}

func TestProfileDelete(t *testing.T) {
	setup := func(t *testing.T) (string, string) {
		root := t.TempDir()
		dir := filepath.Join(root, "profiles", "work")
		writeFile(t, filepath.Join(dir, "config.yaml"), "model: some/model\n")
		return root, dir
	}
	summary := func(dir string) string {
		return "\nProfile: work\nPath:    " + dir + "\nModel:   some/model\n\nThis will permanently delete:\n  • All config, API keys, memories, sessions, skills, cron jobs\n"
	}
	t.Run("EOF cancels", func(t *testing.T) {
		root, dir := setup(t)
		f := newFakeSys(t, "HERMES_HOME="+root)
		assert.Equal(t, f.main("profile", "delete", "work"), 0)
		assert.Equal(t, f.stdout.String(), summary(dir)+"\nType 'work' to confirm: \nCancelled.\n")
		assert.Check(t, isDir(dir))
	})
	t.Run("mismatch cancels", func(t *testing.T) {
		root, dir := setup(t)
		f := newFakeSys(t, "HERMES_HOME="+root)
		f.Stdin = strings.NewReader("wrok\n")
		assert.Equal(t, f.main("profile", "delete", "work"), 0)
		assert.Check(t, strings.HasSuffix(f.stdout.String(), "Type 'work' to confirm: Cancelled.\n"), f.stdout.String())
		assert.Check(t, isDir(dir))
	})
	t.Run("typed name deletes", func(t *testing.T) {
		root, dir := setup(t)
		writeFile(t, filepath.Join(root, "active_profile"), "work\n")
		f := newFakeSys(t, "HERMES_HOME="+root)
		f.Stdin = strings.NewReader("  work  \n")
		assert.Equal(t, f.main("profile", "delete", "work"), 0)
		assert.Equal(t, f.stdout.String(), summary(dir)+"\nType 'work' to confirm: ✓ Removed "+dir+"\n✓ Active profile reset to default\n\nProfile 'work' deleted.\n")
		_, err := os.Stat(dir)
		assert.Check(t, errors.Is(err, os.ErrNotExist))
	})
	t.Run("--yes under s6 removes the slot", func(t *testing.T) {
		root, dir := setup(t)
		f := newFakeSys(t, "HERMES_HOME="+root)
		f.underS6(t)
		slot := filepath.Join(f.root, "run/service/gateway-work")
		assert.NilError(t, os.MkdirAll(slot, 0o755))
		assert.Equal(t, f.main("profile", "delete", "work", "-y"), 0)
		cmd := filepath.Join(f.root, "command")
		assert.DeepEqual(t, f.runs, [][]string{
			{cmd + "/s6-svc", "-d", slot},
			{cmd + "/s6-svwait", "-D", "-t", "10000", slot},
			{cmd + "/s6-svscanctl", "-an", filepath.Join(f.root, "run/service")},
		})
		_, err := os.Stat(slot)
		assert.Check(t, errors.Is(err, os.ErrNotExist))
		assert.Check(t, strings.HasSuffix(f.stdout.String(), "\nProfile 'work' deleted.\n"))
		_, err = os.Stat(dir)
		assert.Check(t, errors.Is(err, os.ErrNotExist))
	})
	t.Run("--yes with an s6 error is still deleted", func(t *testing.T) {
		root, dir := setup(t)
		f := newFakeSys(t, "HERMES_HOME="+root)
		f.underS6(t)
		assert.NilError(t, os.MkdirAll(filepath.Join(f.root, "run/service/gateway-work"), 0o755))
		f.answers["s6-svc"] = answer{err: errors.New("no s6-svc")}
		assert.Equal(t, f.main("profile", "delete", "--yes", "work"), 0)
		assert.Check(t, is.Contains(f.stdout.String(), "⚠ Could not unregister s6 gateway service: no s6-svc\n"))
		_, err := os.Stat(dir)
		assert.Check(t, errors.Is(err, os.ErrNotExist))
	})
	t.Run("refusals", func(t *testing.T) {
		root, _ := setup(t)
		for _, tc := range []struct{ name, out string }{
			{"default", "Error: Cannot delete the default profile (~/.hermes).\nTo remove everything, use: hermes uninstall\n"},
			{"missing", "Error: Profile 'missing' does not exist.\n"},
			{"sudo", "Error: Profile name 'sudo' is reserved — it collides with either the Hermes installation itself or a common system binary.  Pick a different name.\n"},
		} {
			f := newFakeSys(t, "HERMES_HOME="+root)
			assert.Check(t, is.Equal(f.main("profile", "delete", tc.name, "--yes"), 1), tc.name)
			assert.Check(t, is.Equal(f.stdout.String(), tc.out), tc.name)
		}
	})
}

func TestProfileList(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"zeta", "alpha", ".alpha.staging-1", "Bad"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(root, "profiles", d), 0o755))
	}
	f := newFakeSys(t, "HERMES_HOME="+root)
	assert.Equal(t, f.main("profile", "list"), 0)
	assert.Equal(t, f.stdout.String(), "default\nalpha\nzeta\n")
}

func TestDashboardRefusesAPublicBindWithoutAuth(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "192.168.1.5", "127.0.0.2", "::"} {
		f := newFakeSys(t, "HERMES_HOME="+t.TempDir())
		assert.Equal(t, f.main("dashboard", "--host", host, "--port", "0", "--no-open", "--insecure"), 78, host)
		assert.Check(t, strings.HasPrefix(f.stderr.String(), "Refusing to bind dashboard to "+host+" — the auth gate engages on non-loopback binds ("+host+"), but no auth providers are registered.\n"))
	}
}

func TestDashboardAuthProviders(t *testing.T) {
	doc := func(s string) map[string]any {
		p := filepath.Join(t.TempDir(), "c.yaml")
		writeFile(t, p, s)
		d, _, err := loadYAML(p)
		assert.NilError(t, err)
		return d
	}
	for _, tc := range []struct {
		env  []string
		doc  map[string]any
		want bool
	}{
		{nil, nil, false},
		{[]string{"HERMES_DASHBOARD_BASIC_AUTH_USERNAME=u"}, nil, false},
		{[]string{"HERMES_DASHBOARD_BASIC_AUTH_USERNAME=u", "HERMES_DASHBOARD_BASIC_AUTH_PASSWORD=p"}, nil, true},
		{[]string{"HERMES_DASHBOARD_BASIC_AUTH_USERNAME=u", "HERMES_DASHBOARD_BASIC_AUTH_PASSWORD_HASH=scrypt$x"}, nil, true},
		{[]string{"HERMES_DASHBOARD_OAUTH_CLIENT_ID=c"}, nil, true},
		{[]string{"HERMES_DASHBOARD_OIDC_ISSUER=https://id"}, nil, false},
		{[]string{"HERMES_DASHBOARD_OIDC_ISSUER=https://id", "HERMES_DASHBOARD_OIDC_CLIENT_ID=c"}, nil, true},
		{nil, doc("dashboard:\n  basic_auth:\n    username: admin\n    password_hash: scrypt$x\n"), true},
		{nil, doc("dashboard:\n  basic_auth:\n    username: admin\n"), false},
	} {
		d := tc.doc
		if d == nil {
			d = map[string]any{}
		}
		assert.Check(t, is.Equal(dashboardAuthProvider(newEnviron(tc.env), d), tc.want), "%v %v", tc.env, tc.doc)
	}
	// The profile's .env counts: it is loaded before the command runs.
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".env"), "HERMES_DASHBOARD_OAUTH_CLIENT_ID=from-dotenv\n")
	f := newFakeSys(t, "HERMES_HOME="+home)
	inv, _, ok := f.resolveProfile([]string{"dashboard"}, newEnviron(f.Environ))
	assert.Assert(t, ok)
	inv.env.overlay(loadDotenv(filepath.Join(inv.home, ".env")))
	assert.Check(t, dashboardAuthProvider(inv.env, map[string]any{}))
}

func TestStatusFiles(t *testing.T) {
	home := t.TempDir()
	rec := newPidRecord(home, []string{"hermes-agent", "gateway", "run"})
	assert.Check(t, rec.StartTime != nil)
	assert.Check(t, is.Equal(rec.HermesHome, canonicalHome(home)))

	// A fresh file is the full record.
	assert.NilError(t, writeRuntimeStatus(home, rec, map[string]any{"gateway_state": "starting"}))
	st := readJSON(t, filepath.Join(home, runtimeStatusFile))
	for _, k := range []string{"pid", "kind", "argv", "start_time", "hermes_home", "gateway_state", "exit_reason", "restart_requested", "active_agents", "platforms", "session_store", "updated_at"} {
		_, ok := st[k]
		assert.Check(t, ok, k)
	}
	assert.Check(t, is.Equal(st["kind"], "hermes-gateway"))
	_, err := time.Parse(time.RFC3339Nano, st["updated_at"].(string))
	assert.NilError(t, err)

	// An existing file keeps the keys it does not own.
	writeFile(t, filepath.Join(home, runtimeStatusFile), `{"desired_state":"running","updated_at":1700000000,"custom":{"a":1}}`)
	assert.NilError(t, writeRuntimeStatus(home, rec, map[string]any{"gateway_state": "running", "platform.api_server": map[string]any{"state": "connected"}}))
	st = readJSON(t, filepath.Join(home, runtimeStatusFile))
	assert.Check(t, is.Equal(st["desired_state"], "running"))
	assert.Check(t, is.DeepEqual(st["custom"], map[string]any{"a": 1.0}))
	assert.Check(t, is.Equal(st["gateway_state"], "running"))
	_, isString := st["updated_at"].(string)
	assert.Check(t, isString, "updated_at is re-stamped as ISO 8601")
	api := st["platforms"].(map[string]any)["api_server"].(map[string]any)
	assert.Check(t, is.Equal(api["state"], "connected"))
	assert.Check(t, is.Equal(api["writer_pid"], float64(os.Getpid())))

	// Lock and pid file.
	assert.Check(t, is.Equal(runningPID(home), 0))
	lock, err := acquireLock(home, rec)
	assert.NilError(t, err)
	assert.Check(t, lockHeld(home))
	_, err = acquireLock(home, rec)
	assert.Check(t, errors.Is(err, syscall.EWOULDBLOCK))
	assert.NilError(t, writePidFile(home, rec))
	assert.Check(t, writePidFile(home, rec) != nil, "the pid file is created exclusively")
	assert.Check(t, is.Equal(runningPID(home), os.Getpid()))
	pidRec := readJSON(t, filepath.Join(home, pidFileName))
	for _, k := range []string{"pid", "kind", "argv", "start_time", "hermes_home"} {
		_, ok := pidRec[k]
		assert.Check(t, ok, k)
	}
	lock.release()
	assert.Check(t, !lockHeld(home))
	assert.Check(t, is.Equal(runningPID(home), 0), "a pid file without the lock is not trusted")
	cleanupStale(home)
	_, err = os.Stat(filepath.Join(home, pidFileName))
	assert.Check(t, errors.Is(err, os.ErrNotExist))

	// Legacy bare pid and a symlinked pid file are handled, never followed.
	writeFile(t, filepath.Join(home, pidFileName), "12345\n")
	assert.Check(t, is.DeepEqual(readRecord(filepath.Join(home, pidFileName)), map[string]any{"pid": 12345.0}))
	target := filepath.Join(t.TempDir(), "hostname")
	writeFile(t, target, "keep me")
	assert.NilError(t, os.Remove(filepath.Join(home, pidFileName)))
	assert.NilError(t, os.Symlink(target, filepath.Join(home, pidFileName)))
	assert.Check(t, writePidFile(home, rec) != nil)
	cleanupStale(home)
	assert.NilError(t, writePidFile(home, rec))
	b, _ := os.ReadFile(target)
	assert.Check(t, is.Equal(string(b), "keep me"))
}

func TestConsumeMarker(t *testing.T) {
	home := t.TempDir()
	path := filepath.Join(home, plannedStopMarkerFile)
	self := os.Getpid()
	start := processStartTime(self)
	now := time.Now()
	write := func(m map[string]any) {
		b, _ := json.Marshal(m)
		writeFile(t, path, string(b))
	}
	iso := func(d time.Duration) string { return now.Add(d).UTC().Format("2006-01-02T15:04:05.000000-07:00") }
	for _, tc := range []struct {
		name   string
		marker map[string]any
		match  bool
		kept   bool
	}{
		{"fresh, this pid", map[string]any{"target_pid": self, "target_start_time": *start, "stopper_pid": 1, "written_at": iso(-time.Second)}, true, false},
		{"start time unknown", map[string]any{"target_pid": self, "target_start_time": nil, "written_at": iso(-time.Second)}, true, false},
		{"Z suffix", map[string]any{"target_pid": self, "written_at": now.UTC().Format(time.RFC3339)}, true, false},
		{"another pid", map[string]any{"target_pid": self + 1, "written_at": iso(-time.Second)}, false, false},
		{"another start time", map[string]any{"target_pid": self, "target_start_time": *start + 1, "written_at": iso(-time.Second)}, false, false},
		{"older than 60 s", map[string]any{"target_pid": self, "written_at": iso(-61 * time.Second)}, false, false},
		{"naive time", map[string]any{"target_pid": self, "written_at": now.Format("2006-01-02T15:04:05")}, false, false},
		{"no target", map[string]any{"written_at": iso(0)}, false, false},
		{"another home", map[string]any{"target_pid": self, "target_hermes_home": t.TempDir(), "written_at": iso(0)}, false, true},
	} {
		write(tc.marker)
		assert.Check(t, is.Equal(consumeMarker(path, home, now), tc.match), tc.name)
		_, err := os.Stat(path)
		assert.Check(t, is.Equal(err == nil, tc.kept), tc.name)
		os.Remove(path)
	}
	assert.Check(t, !consumeMarker(path, home, now), "no marker")
}
