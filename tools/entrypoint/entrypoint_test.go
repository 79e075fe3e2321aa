package entrypoint

import (
	"bytes"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestResolve(t *testing.T) {
	onPath := func(name string) (string, error) {
		if name == "bash" || name == "/bin/sh" {
			return "/usr/bin/" + filepath.Base(name), nil
		}
		return "", errors.New("not found")
	}
	for _, tc := range []struct {
		args []string
		want Plan
	}{
		{nil, Plan{Front, []string{"hermes"}}},
		{[]string{}, Plan{Front, []string{"hermes"}}},
		{[]string{"bash", "-c", "echo hi"}, Plan{"/usr/bin/bash", []string{"bash", "-c", "echo hi"}}},
		{[]string{"/bin/sh"}, Plan{"/usr/bin/sh", []string{"/bin/sh"}}},
		{[]string{"gateway", "run"}, Plan{Front, []string{"hermes", "gateway", "run"}}},
		{[]string{"-p", "work", "gateway", "run"}, Plan{Front, []string{"hermes", "-p", "work", "gateway", "run"}}},
	} {
		assert.Check(t, is.DeepEqual(Resolve(tc.args, onPath), tc.want), "%q", tc.args)
	}
}

func TestCheckUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   Identity
		err  string
	}{
		{"root", Identity{UID: 0, HermesKnown: true, HermesUID: 10000, HermesGID: 10000}, ""},
		{"root without a hermes account", Identity{UID: 0}, ""},
		{"hermes", Identity{UID: 10000, GID: 10000, HermesKnown: true, HermesUID: 10000, HermesGID: 10000}, ""},
		{"remapped hermes", Identity{UID: 2000, HermesKnown: true, HermesUID: 2000, HermesGID: 3000}, ""},
		{"another user", Identity{UID: 1000, GID: 1000, HermesKnown: true, HermesUID: 10000, HermesGID: 10000},
			"refusing to run as uid 1000: run the container as root (the default; it drops to the hermes user) or as hermes (--user 10000:10000); remap hermes with HERMES_UID/HERMES_GID instead"},
		{"another user, remapped hermes", Identity{UID: 1000, HermesKnown: true, HermesUID: 2000, HermesGID: 3000}, "(--user 2000:3000)"},
		{"another user, no hermes account", Identity{UID: 1000}, "(--user 10000:10000)"},
	} {
		err := CheckUser(tc.id)
		if tc.err == "" {
			assert.Check(t, err, tc.name)
		} else {
			assert.Check(t, is.ErrorContains(err, tc.err), tc.name)
		}
	}
}

func TestSetEnvReplaces(t *testing.T) {
	env := []string{"HOME=/root", "HOMEDIR=/x", "USER=root"}
	got := setEnv(env, "HOME", "/opt/data")
	assert.Check(t, is.DeepEqual(got, []string{"HOMEDIR=/x", "USER=root", "HOME=/opt/data"}))
	assert.Check(t, is.DeepEqual(env, []string{"HOME=/root", "HOMEDIR=/x", "USER=root"}), "the input is not modified")
}

// process is what Main did to the (fake) process.
type process struct {
	exec      *Plan
	env       []string
	droppedTo []int
	stderr    string
	code      int
	replaced  bool
}

// system fakes what Main does to the process: who runs it, the hermes
// account, dropping privileges and exec.
type system struct {
	uid     int
	hermes  *account.Account
	dropErr error
	execErr error
}

// fakeProcess is the Process of one run of the wrapper.
type fakeProcess struct {
	s system
	p *process
}

func (f fakeProcess) Getuid() int { return f.s.uid }
func (f fakeProcess) Getgid() int { return f.s.uid }
func (f fakeProcess) Lookup(name string) (account.Account, error) {
	if f.s.hermes == nil || name != "hermes" {
		return account.Account{}, user.UnknownUserError(name)
	}
	return *f.s.hermes, nil
}
func (f fakeProcess) Become(a account.Account) error {
	f.p.droppedTo = []int{a.UID, a.GID}
	return f.s.dropErr
}
func (f fakeProcess) Exec(path string, argv, env []string) error {
	f.p.exec, f.p.env = &Plan{path, argv}, env
	if f.s.execErr != nil {
		return f.s.execErr
	}
	runtime.Goexit() // the process image is replaced
	return nil
}

func (s system) main(t *testing.T, args ...string) (p process) {
	t.Helper()
	var stderr bytes.Buffer
	w := Wrapper{Proc: fakeProcess{s, &p}, Stderr: &stderr}
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.code = w.Run(args, contenv.Environ(os.Environ(), envDir))
		returned = true
	}()
	<-done
	p.replaced = !returned
	p.stderr = stderr.String()
	return p
}

// envDir is where the test's container environment was dumped.
var envDir = contenv.Dir

var hermesUser = &account.Account{Name: "hermes", UID: 10000, GID: 10001, Groups: []int{10001}, Home: "/opt/data"}

// containerEnv makes env the dumped container environment.
func containerEnv(t *testing.T, env map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range env {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644))
	}
	old := envDir
	envDir = dir
	t.Cleanup(func() { envDir = old })
	t.Setenv("S6_KEEP_ENV", "")
	t.Setenv("PATH", os.Getenv("PATH")) // Main sets PATH from the container's
}

func TestMainAsRootDropsToHermesAndRunsTheFront(t *testing.T) {
	containerEnv(t, map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/root", "HERMES_DASHBOARD": "1\n"})
	p := system{uid: 0, hermes: hermesUser}.main(t, "gateway", "run")
	assert.Check(t, p.replaced)
	assert.Check(t, is.DeepEqual(p.droppedTo, []int{10000, 10001}))
	assert.Check(t, is.DeepEqual(*p.exec, Plan{Front, []string{"hermes", "gateway", "run"}}))
	assert.Check(t, is.Contains(p.env, "HERMES_DASHBOARD=1"), "the container environment, restored")
	assert.Check(t, is.Contains(p.env, "HOME=/opt/data"))
	assert.Check(t, is.Contains(p.env, "USER=hermes"))
	assert.Check(t, !slices.Contains(p.env, "HOME=/root"))
}

func TestMainRunsAnExecutableOnTheContainersPath(t *testing.T) {
	bin := t.TempDir()
	tool := filepath.Join(bin, "mytool")
	assert.NilError(t, os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755))
	containerEnv(t, map[string]string{"PATH": bin + ":/usr/bin:/bin"})
	p := system{uid: 10000, hermes: &account.Account{Name: "hermes", UID: 10000, GID: 10000, Home: "/opt/data"}}.main(t, "mytool", "--flag")
	assert.Check(t, p.replaced)
	assert.Check(t, is.DeepEqual(*p.exec, Plan{tool, []string{"mytool", "--flag"}}))
	assert.Check(t, is.Len(p.droppedTo, 0), "hermes has nothing to drop")
}

func TestMainKeepsTheEnvironmentWithS6KeepEnv(t *testing.T) {
	containerEnv(t, map[string]string{"FROM_DUMP": "1"})
	t.Setenv("S6_KEEP_ENV", "1")
	t.Setenv("FROM_PROCESS", "yes")
	p := system{uid: 0}.main(t, "x")
	assert.Check(t, is.Contains(p.env, "FROM_PROCESS=yes"))
	assert.Check(t, !slices.Contains(p.env, "FROM_DUMP=1"))
	assert.Check(t, is.Len(p.droppedTo, 0), "no hermes account: nothing to drop to")
}

func TestMainRefusesOtherUsers(t *testing.T) {
	containerEnv(t, nil)
	p := system{uid: 1000, hermes: hermesUser}.main(t, "gateway", "run")
	assert.Check(t, is.Equal(p.code, 1))
	assert.Check(t, p.exec == nil)
	assert.Check(t, is.Contains(p.stderr, "hermes: refusing to run as uid 1000"))
	assert.Check(t, is.Contains(p.stderr, "--user 10000:10001"))
}

func TestMainCannotDrop(t *testing.T) {
	containerEnv(t, nil)
	p := system{uid: 0, hermes: hermesUser, dropErr: errors.New("operation not permitted")}.main(t)
	assert.Check(t, is.Equal(p.code, 1))
	assert.Check(t, p.exec == nil, "never run the CMD as root by accident")
	assert.Check(t, is.Equal(p.stderr, "hermes: cannot drop to the hermes user: operation not permitted\n"))
}

func TestMainCannotExec(t *testing.T) {
	containerEnv(t, nil)
	p := system{uid: 0, hermes: hermesUser, execErr: os.ErrNotExist}.main(t, "chat")
	assert.Check(t, is.Equal(p.code, 127))
	assert.Check(t, is.Equal(p.stderr, "hermes: cannot run hermes: file does not exist\n"))
}
