package slotexec

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
)

// bin holds the test's sh and s6-log.
var bin string

// fake is a Process that records instead of acting.
type fake struct {
	Process
	stderr  bytes.Buffer
	became  []string
	made    []string
	exec    []string // path, then argv
	env     []string
	lookErr error
	mkErr   error
}

// newFake: the supervisor's PATH is /command:BIN, the container's BIN
// (replace "BIN" in container), where sh and s6-log are.
func newFake(t *testing.T, euid int, container []string) *fake {
	f := &fake{}
	bin = t.TempDir()
	for _, p := range []string{"sh", "s6-log"} {
		assert.NilError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
	}
	dir := filepath.Join(t.TempDir(), "container_environment")
	if container != nil {
		for i := range container {
			container[i] = strings.ReplaceAll(container[i], "BIN", bin)
		}
		assert.NilError(t, contenv.Dump(dir, container))
	}
	f.Process = Process{
		Environ: func() []string { return []string{"PATH=/command:" + bin, "FROM=supervisor"} },
		Geteuid: func() int { return euid },
		Lookup: func(name string) (account.Account, error) {
			if f.lookErr != nil {
				return account.Account{}, f.lookErr
			}
			return account.Account{Name: name, UID: 10000, GID: 10000}, nil
		},
		Become: func(a account.Account) error { f.became = append(f.became, a.Name); return nil },
		Mkdir:  func(d string) error { f.made = append(f.made, d); return f.mkErr },
		Exec: func(path string, argv, env []string) error {
			f.exec, f.env = append([]string{path}, argv...), env
			return errors.New("exec recorded")
		},
		Stderr: &f.stderr,
		EnvDir: dir,
	}
	return f
}

func TestExecLoadsTheContainerEnvironmentAndSetsOverIt(t *testing.T) {
	f := newFake(t, 0, []string{"PATH=BIN", "FROM=container", "HERMES_S6_SUPERVISED_CHILD=0", "HERMES_DASHBOARD_PORT=9200"})
	code := f.ExecMain([]string{"-user", "hermes", "-env", "HERMES_S6_SUPERVISED_CHILD=1", "-env", "EXTRA=a=b",
		"--", "sh", "--port", "${HERMES_DASHBOARD_PORT:-9119}", "--host", "${HERMES_DASHBOARD_HOST:-127.0.0.1}", "$$HOME"})
	assert.Check(t, is.Equal(code, 127), "the recorded exec returns: %s", f.stderr.String())
	assert.Check(t, is.DeepEqual(f.exec, []string{bin + "/sh", "sh", "--port", "9200", "--host", "127.0.0.1", "$HOME"}))
	assert.Check(t, is.DeepEqual(f.env, []string{"FROM=container", "HERMES_DASHBOARD_PORT=9200", "PATH=" + bin,
		"HERMES_S6_SUPERVISED_CHILD=1", "EXTRA=a=b"}), "the guard wins over a container value")
	assert.Check(t, is.DeepEqual(f.became, []string{"hermes"}))
}

func TestExecWithoutContainerEnvironmentKeepsTheCurrentOne(t *testing.T) {
	f := newFake(t, 1000, nil)
	f.ExecMain([]string{"-user", "hermes", "-env", "HERMES_S6_SUPERVISED_CHILD=1", "--", "sh"})
	assert.Check(t, is.DeepEqual(f.env, []string{"PATH=/command:" + bin, "FROM=supervisor", "HERMES_S6_SUPERVISED_CHILD=1"}))
	assert.Check(t, is.Len(f.became, 0), "not root: the user is kept, as s6-setuidgid would need root")
	assert.Check(t, is.Equal(f.exec[0], bin+"/sh"))
}

func TestExecRefusesBadInputWithoutRunningAnything(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", []string{"-user", "hermes"}, 2, "usage: hermes-s6 slot-exec"},
		{"bad -env", []string{"-env", "NOEQUALS", "--", "sh"}, 2, `want NAME=VALUE, got "NOEQUALS"`},
		{"bad -env name", []string{"-env", "A-B=1", "--", "sh"}, 2, `want NAME=VALUE, got "A-B=1"`},
		{"unknown flag", []string{"-bogus", "--", "sh"}, 2, "flag provided but not defined: -bogus"},
		{"bare $", []string{"--", "echo", "cost: 5$"}, 2, `word "cost: 5$": a $ must start ${NAME}`},
		{"$NAME", []string{"--", "echo", "$HOME"}, 2, `word "$HOME": a $ must start ${NAME}`},
		{"bad reference", []string{"--", "echo", "${A-B}"}, 2, `bad reference "${A-B}"`},
		{"unclosed", []string{"--", "echo", "${HOME"}, 2, `word "${HOME": a $ must start`},
		{"not found", []string{"--", "no-such-program"}, 127, `cannot run no-such-program: executable file not found in $PATH in PATH "/command:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 0, nil)
			f.Exec = func(string, []string, []string) error { t.Fatal("nothing may be exec'd"); return nil }
			if tc.code == 127 {
				f.Exec = nil
			}
			assert.Check(t, is.Equal(f.ExecMain(tc.args), tc.code))
			assert.Check(t, is.Contains(f.stderr.String(), tc.want))
			if tc.code == 2 {
				assert.Check(t, is.Len(f.became, 0), "bad input: no privilege change either")
			}
		})
	}
}

func TestExecUnknownUserFails111(t *testing.T) {
	f := newFake(t, 0, nil)
	f.lookErr = errors.New("user: unknown user hermes")
	f.Exec = func(string, []string, []string) error { t.Fatal("nothing may be exec'd as root"); return nil }
	assert.Check(t, is.Equal(f.ExecMain([]string{"-user", "hermes", "--", "sh"}), 111))
	assert.Check(t, is.Equal(f.stderr.String(), "slot-exec: cannot run as hermes: user: unknown user hermes\n"))
}

func TestLogWritesUnderHermesHomeAsTheUser(t *testing.T) {
	f := newFake(t, 0, []string{"PATH=BIN", "HERMES_HOME=/data"})
	f.Exec = func(path string, argv, env []string) error {
		f.exec = append([]string{path}, argv...)
		assert.Check(t, is.DeepEqual(f.became, []string{"hermes"}), "the directory is made after dropping root")
		return errors.New("exec recorded")
	}
	f.LogMain([]string{"-user", "hermes", "work"})
	assert.Check(t, is.DeepEqual(f.made, []string{"/data/logs/gateways/work"}))
	assert.Check(t, is.DeepEqual(f.exec[1:], []string{"s6-log", "--", "1", "T", "s1048576", "n10", "/data/logs/gateways/work"}))
}

func TestLogFallsBackToDockerLogsOnly(t *testing.T) {
	f := newFake(t, 0, []string{"PATH=BIN"})
	f.mkErr = os.ErrPermission
	f.LogMain([]string{"-user", "hermes", "default"})
	assert.Check(t, is.DeepEqual(f.made, []string{"/opt/data/logs/gateways/default"}), "HERMES_HOME defaults to /opt/data")
	assert.Check(t, is.DeepEqual(f.exec[1:], []string{"s6-log", "--", "1"}))
	assert.Check(t, is.Contains(f.stderr.String(), "slot-log: default: logging to docker logs only: permission denied\n"))
}

func TestLogRejectsBadNames(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}, {"../x"}, {".."}, {"a/b"}} {
		f := newFake(t, 0, nil)
		assert.Check(t, is.Equal(f.LogMain(args), 2), "%q", args)
		assert.Check(t, is.Contains(f.stderr.String(), "usage: hermes-s6 slot-log"))
		assert.Check(t, is.Len(f.made, 0))
	}
}

func TestExpand(t *testing.T) {
	env := []string{"A=1", "EMPTY=", "B=x y"}
	for in, want := range map[string]string{
		"plain":         "plain",
		"${A}":          "1",
		"${A:-d}":       "1",
		"${EMPTY:-d}":   "d",
		"${UNSET:-d}":   "d",
		"${UNSET}":      "",
		"${UNSET:-}":    "",
		"<${B}>":        "<x y>",
		"$$":            "$",
		"$${A}":         "${A}",
		"${A:-a:-b}":    "1",
		"${UNSET:-$x}":  "$x",
		"${A}${B}$$$$":  "1x y$$",
		"":              "",
		"${UNSET:-1.2}": "1.2",
	} {
		got, err := Expand([]string{in}, env)
		assert.Check(t, err, in)
		if err == nil {
			assert.Check(t, is.Equal(got[0], want), in)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "data"), nil, 0o644))
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))
	p, err := LookPath("tool", "/nonexistent:"+dir)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(p, filepath.Join(dir, "tool")))
	for _, name := range []string{"data", "subdir", "missing"} {
		_, err := LookPath(name, dir)
		assert.Check(t, is.ErrorIs(err, exec.ErrNotFound), name)
	}
	p, _ = LookPath("./rel/tool", "")
	assert.Check(t, is.Equal(p, "./rel/tool"), "a name with a slash is used as it is")
}

// TestRealDropOfPrivileges runs slot-exec for real in a child process (this
// test binary): root drops to nobody, reads a real container environment
// directory, and the program sees both.
func TestRealDropOfPrivileges(t *testing.T) {
	if os.Getenv("SLOTEXEC_CHILD") != "" {
		p := System()
		p.EnvDir = os.Getenv("SLOTEXEC_CHILD")
		os.Exit(p.ExecMain(strings.Split(os.Getenv("SLOTEXEC_ARGS"), "\n")))
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges")
	}
	if _, err := account.Lookup("nobody"); err != nil {
		t.Skip("no nobody account: ", err)
	}
	dir := filepath.Join(t.TempDir(), "env")
	assert.NilError(t, contenv.Dump(dir, []string{"PATH=/usr/bin:/bin", "FROM=container"}))
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealDropOfPrivileges$")
	cmd.Env = []string{"SLOTEXEC_CHILD=" + dir, "PATH=/usr/bin:/bin",
		"SLOTEXEC_ARGS=-user\nnobody\n-env\nGUARD=1\n--\nsh\n-c\necho $$(id -un) $${FROM} $${GUARD} ${FROM}"}
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.Check(t, is.Equal(string(out), "nobody container 1 container\n"))
}

func TestExecRunsItsOwnCommandsInProcess(t *testing.T) {
	f := newFake(t, 0, []string{"PATH=BIN", "HERMES_HOME=/data"})
	f.Exec = func(string, []string, []string) error { t.Fatal("an in-process command is not exec'd"); return nil }
	var gotPath string
	var gotArgv []string
	f.InProcess = func(path string, argv []string) func() int {
		gotPath, gotArgv = path, argv
		return func() int { return len(os.Getenv("HERMES_HOME")) + len(os.Getenv("HERMES_S6_SUPERVISED_CHILD")) }
	}
	t.Setenv("HERMES_HOME", "before")
	code := f.ExecMain([]string{"-user", "hermes", "-env", "HERMES_S6_SUPERVISED_CHILD=1", "--", "sh", "gateway", "run"})
	assert.Check(t, is.Equal(code, len("/data")+1), "runs with the program's environment as the process environment")
	assert.Check(t, is.Equal(gotPath, bin+"/sh"))
	assert.Check(t, is.DeepEqual(gotArgv, []string{"sh", "gateway", "run"}))
	assert.Check(t, is.DeepEqual(f.became, []string{"hermes"}), "privileges are dropped first")
}
