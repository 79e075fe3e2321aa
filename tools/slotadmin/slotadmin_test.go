package slotadmin

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/internal/syncbuf"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

func TestMain(m *testing.M) { s6test.Main(m) }

// fake records requests; err is what each returns.
type fake struct {
	calls []string
	err   error
}

func (f *fake) Register(n string) error   { f.calls = append(f.calls, "register "+n); return f.err }
func (f *fake) Unregister(n string) error { f.calls = append(f.calls, "unregister "+n); return f.err }

func TestServeRefusesBadRequestsAndChangesNothing(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"register"},
		{"register", "a", "b"},
		{"start", "work"},
		{"register", "--all"},
	} {
		f := &fake{}
		var stderr bytes.Buffer
		code := Serve(f, args, &stderr, "uid 10000")
		if len(args) == 2 && (args[0] == Register || args[0] == Unregister) {
			continue // a valid verb: the registrar validates the name (below)
		}
		assert.Check(t, is.Equal(code, 2), "%q", args)
		assert.Check(t, is.Contains(stderr.String(), "hermes-admin: refused request"), "%q", args)
		assert.Check(t, is.Contains(stderr.String(), "from uid 10000"), "%q", args)
		assert.Check(t, is.Len(f.calls, 0), "%q: nothing done", args)
	}
}

func TestServeExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	assert.Check(t, is.Equal(Serve(&fake{}, []string{"register", "work"}, &stderr, "root"), 0))
	assert.Check(t, is.Equal(stderr.String(), ""))
	assert.Check(t, is.Equal(Serve(&fake{err: &RequestError{"no"}}, []string{"unregister", "work"}, &stderr, "root"), 2))
	assert.Check(t, is.Contains(stderr.String(), `hermes-admin: refused unregister "work" from root: no`))
	assert.Check(t, is.Equal(Serve(&fake{err: errors.New("disk full")}, []string{"register", "work"}, &stderr, "root"), 1))
	assert.Check(t, is.Contains(stderr.String(), "hermes-admin: register work: disk full"))
}

func TestLocalValidatesTheNameAndTheProfile(t *testing.T) {
	scan, home := t.TempDir(), t.TempDir()
	l := Local{S6: s6.New(scan), Home: home}
	for _, name := range []string{"../x", "Work", "", "a b", "-x", strings.Repeat("a", 64)} {
		var re *RequestError
		assert.Check(t, errors.As(l.Register(name), &re), "register %q", name)
		assert.Check(t, errors.As(l.Unregister(name), &re), "unregister %q", name)
	}
	var re *RequestError
	err := l.Register("work")
	assert.Check(t, errors.As(err, &re) && strings.Contains(err.Error(), `no profile "work"`), "%v", err)
	err = l.Unregister(profile.Default)
	assert.Check(t, errors.As(err, &re) && strings.Contains(err.Error(), "never removed"), "%v", err)
	assert.NilError(t, l.Unregister("work"), "not registered: nothing to do")
	entries, err := os.ReadDir(scan)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "nothing was written")
}

func TestLocalRegistersAndRemovesOnALiveScan(t *testing.T) {
	scan := s6test.Start(t)
	m := s6.New(scan.Dir)
	assert.NilError(t, os.MkdirAll(profile.Dir(scan.Home, "work"), 0o755))
	l := Local{S6: m, Home: scan.Home}
	assert.NilError(t, l.Register("work"))
	assert.NilError(t, l.Register("work"), "again: left as it is")
	id, err := render.ReadIdentity(m.Dir("gateway-work"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(id, render.Identity{Kind: render.KindGateway, Profile: "work"}))
	st, err := m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, !st.Up && !st.WantUp, "registered down: %s", st)
	assert.NilError(t, l.Unregister("work"))
	assert.Check(t, !m.Exists("gateway-work"))
}

// handler is what the test server runs for each request instead of
// `hermes-s6 slot-admin`: it says what it got and as whom, and exits 3 for
// the profile "fail".
const handler = `#!/bin/sh
echo "handled $* uid=$(id -u) caller=$IPCREMOTEEUID"
[ "$3" = fail ] && { echo "it failed" >&2; exit 3; }
exit 0
`

func TestTheAdminServiceOnlyAnswersRootAndTheGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs clients as other users: needs root")
	}
	if _, err := exec.LookPath("s6-ipcserver"); err != nil {
		t.Skip("s6 is not installed: ", err)
	}
	const gid = 4242
	// Other users must reach the directory: not under t.TempDir (0700).
	root, err := os.MkdirTemp("", "slotadmin-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	assert.NilError(t, os.Chmod(root, 0o755))
	dir := filepath.Join(root, "admin")
	assert.NilError(t, Prepare(dir, gid))
	assert.NilError(t, Prepare(dir, gid), "again: made afresh")
	st, err := os.Stat(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode(), os.ModeDir|os.ModeSetgid|0o750))
	assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Gid), gid))

	tool := filepath.Join(root, "tool")
	assert.NilError(t, os.WriteFile(tool, []byte(handler), 0o755))
	argv := ServerArgv(tool, dir)
	argv[len(argv)-1] = "slot-admin" // the handler sees "slot-admin VERB NAME"
	srv := exec.Command(argv[0], argv[1:]...)
	var srvLog syncbuf.Buffer // written by the server while the test reads it
	srv.Stderr = &srvLog
	assert.NilError(t, srv.Start())
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	sock := filepath.Join(dir, "socket")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if _, err := os.Stat(sock); err == nil {
			return poll.Success()
		}
		return poll.Continue("no socket yet")
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
	st, err = os.Stat(sock)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Gid), gid), "the socket is the group's (setgid directory)")
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o770)))

	ask := func(uid, gid uint32, groups []uint32, verb, name string) (int, string, string) {
		var out, errb bytes.Buffer
		cmd := exec.Command("s6-sudo", "-e", "-t", "5000", "-T", "10000", sock, verb, name)
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			assert.NilError(t, err)
		}
		return code, out.String(), errb.String()
	}

	// The hermes group: the request reaches the handler, run as root, with
	// the caller's uid; its output and exit code come back.
	code, out, _ := ask(10000, gid, nil, "register", "work")
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Equal(out, "handled slot-admin register work uid=0 caller=10000\n"))
	code, _, errOut := ask(10000, gid, nil, "register", "fail")
	assert.Check(t, is.Equal(code, 3))
	assert.Check(t, is.Equal(errOut, "it failed\n"))
	// Root.
	code, out, _ = ask(0, 0, nil, "unregister", "work")
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Contains(out, "caller=0"))

	// Another user cannot even reach the socket.
	code, out, errOut = ask(4343, 4343, nil, "register", "work")
	assert.Check(t, code != 0)
	assert.Check(t, is.Equal(out, ""), "the handler never ran")
	assert.Check(t, is.Contains(errOut, "ermission denied"))
	// One that reaches it through a supplementary group is refused by the
	// access rules (its effective gid is not the group).
	code, out, _ = ask(4343, 4343, []uint32{gid}, "register", "work")
	assert.Check(t, code != 0)
	assert.Check(t, is.Equal(out, ""), "the handler never ran")
	assert.Check(t, !strings.Contains(srvLog.String(), "handled"))
}

func TestRemoteSaysWhenTheServiceIsNotThere(t *testing.T) {
	r := Remote{Socket: filepath.Join(t.TempDir(), "socket")}
	err := r.Register("work")
	assert.Check(t, is.ErrorContains(err, "the slot service (hermes-admin) is not reachable at "))
}
