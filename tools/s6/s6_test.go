package s6

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/render"
)

// liveScan starts a real s6-svscan on a temporary scan directory.
func liveScan(t *testing.T) (*Manager, string) {
	t.Helper()
	scan := s6test.Start(t)
	return New(scan.Dir), scan.Home
}

// fakeFront writes a stand-in for the `hermes` front: it runs forever, or
// exits with the code in $home/exit-<slot> if that file exists.
func fakeFront(t *testing.T, home string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "front")
	script := `#!/bin/sh
name="${2:-default}"
[ "$1" = -p ] || name=default
if [ -f "$HERMES_HOME/exit-$name" ]; then exit "$(cat "$HERMES_HOME/exit-$name")"; fi
echo "fake gateway $name pid $$ child=$HERMES_S6_SUPERVISED_CHILD"
exec sleep 1000
`
	assert.NilError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

func testSlot(t *testing.T, front, profile string) render.Slot {
	u, err := user.Current()
	assert.NilError(t, err)
	s := render.GatewaySlot(profile)
	s.Front = front
	s.Shell, s.Tool = "/bin/sh", s6test.Tool(t)
	s.User = u.Username
	s.Probe = nil // nothing serves /health here
	return s
}

func statusIs(m *Manager, name string, want func(Status) bool, what string) poll.Check {
	return func(poll.LogT) poll.Result {
		st, err := m.Status(name)
		if err != nil {
			return poll.Continue("status %s: %v", name, err)
		}
		if want(st) {
			return poll.Success()
		}
		return poll.Continue("%s: want %s, have %s", name, what, st)
	}
}

var pollOpts = []poll.SettingOp{poll.WithTimeout(60 * time.Second), poll.WithDelay(20 * time.Millisecond)}

func TestRegisterStartCrashRestartStop(t *testing.T) {
	m, home := liveScan(t)
	slot := testSlot(t, fakeFront(t, home), "work")
	assert.NilError(t, m.Register(slot))

	st, err := m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, !st.Up && !st.WantUp && !st.NormallyUp, "registered slot must be down: %s", st)

	assert.NilError(t, m.Start("gateway-work"))
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return s.Up && s.Pid > 0 }, "up"), pollOpts...)
	st, _ = m.Status("gateway-work")
	first := st.Pid

	// The logger wrote the gateway's output under $HERMES_HOME.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		b, _ := os.ReadFile(filepath.Join(home, "logs", "gateways", "work", "current"))
		if strings.Contains(string(b), "fake gateway work pid") && strings.Contains(string(b), "child=1") {
			return poll.Success()
		}
		ls, _ := exec.Command("sh", "-c", "ls -la "+filepath.Join(home, "logs", "gateways", "work")+"; cat "+filepath.Join(home, "logs", "gateways", "work")+"/@*").CombinedOutput()
		return poll.Continue("log file has %q; %s", b, ls)
	}, pollOpts...)

	// Crash: the supervisor restarts it with a new pid.
	assert.NilError(t, exec.Command("kill", "-KILL", fmt.Sprint(first)).Run())
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return s.Up && s.Pid > 0 && s.Pid != first }, "up with a new pid"), pollOpts...)
	// s6 kept how it died, though it is up again.
	death, ok, err := m.LastDeath("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, ok)
	assert.Check(t, is.Equal(death.Signal, "SIGKILL"))

	// Restart of a running slot gives a new pid too.
	st, _ = m.Status("gateway-work")
	second := st.Pid
	assert.NilError(t, m.Restart("gateway-work"))
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return s.Up && s.Pid != second }, "restarted"), pollOpts...)

	assert.NilError(t, m.Stop("gateway-work", true))
	st, err = m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, !st.Up && !st.WantUp, "after stop: %s", st)
	// Stopping a stopped slot is fine.
	assert.NilError(t, m.Stop("gateway-work", true))

}

func TestExit78StaysDown(t *testing.T) {
	m, home := liveScan(t)
	assert.NilError(t, os.WriteFile(filepath.Join(home, "exit-bad"), []byte("78"), 0o644))
	assert.NilError(t, m.Register(testSlot(t, fakeFront(t, home), "bad")))
	assert.NilError(t, m.Start("gateway-bad"))
	poll.WaitOn(t, statusIs(m, "gateway-bad", func(s Status) bool { return !s.Up && !s.WantUp && s.ExitCode == 78 }, "down after exit 78"), pollOpts...)
	// It stays down: a little later it is still down and not wanted up.
	poll.WaitOn(t, statusIs(m, "gateway-bad", func(s Status) bool { return !s.Up && !s.WantUp && s.Seconds >= 1 }, "still down a second later"), pollOpts...)
}

func TestOtherExitCodesRestart(t *testing.T) {
	m, home := liveScan(t)
	assert.NilError(t, os.WriteFile(filepath.Join(home, "exit-flaky"), []byte("1"), 0o644))
	assert.NilError(t, m.Register(testSlot(t, fakeFront(t, home), "flaky")))
	assert.NilError(t, m.Start("gateway-flaky"))
	// Exit 1 is a crash: the supervisor keeps trying; once fixed it stays up.
	poll.WaitOn(t, statusIs(m, "gateway-flaky", func(s Status) bool { return s.WantUp && s.ExitCode == 1 }, "crashed with 1, still wanted up"), pollOpts...)
	assert.NilError(t, os.Remove(filepath.Join(home, "exit-flaky")))
	poll.WaitOn(t, statusIs(m, "gateway-flaky", func(s Status) bool { return s.Up && s.Pid > 0 }, "up again"), pollOpts...)
}

func TestUnregisterLeavesNothing(t *testing.T) {
	m, home := liveScan(t)
	assert.NilError(t, m.Register(testSlot(t, fakeFront(t, home), "tmp")))
	assert.NilError(t, m.Start("gateway-tmp"))
	poll.WaitOn(t, statusIs(m, "gateway-tmp", func(s Status) bool { return s.Up }, "up"), pollOpts...)
	assert.NilError(t, m.Unregister("gateway-tmp"))
	entries, err := os.ReadDir(m.ScanDir)
	assert.NilError(t, err)
	for _, e := range entries {
		assert.Check(t, !strings.Contains(e.Name(), "gateway-tmp"), "left behind: %s", e.Name())
	}
	err = m.Unregister("gateway-tmp")
	assert.Check(t, errors.Is(err, ErrNoSlot), "got %v", err)
	_, err = m.Status("gateway-tmp")
	assert.Check(t, errors.Is(err, ErrNoSlot), "got %v", err)
}

func TestConcurrentRegistrations(t *testing.T) {
	m, home := liveScan(t)
	front := fakeFront(t, home)

	// Different slots: all succeed.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.Register(testSlot(t, front, fmt.Sprintf("p%d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		assert.Check(t, err, "slot p%d", i)
	}
	slots, err := m.Slots()
	assert.NilError(t, err)
	assert.Check(t, is.Len(slots, 8))

	// The same slot: exactly one wins, the others get ErrExists.
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.Register(testSlot(t, front, "same"))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			assert.Check(t, errors.Is(err, ErrExists), "got %v", err)
		}
	}
	assert.Equal(t, won, 1)
	entries, _ := os.ReadDir(m.ScanDir)
	for _, e := range entries {
		assert.Check(t, !strings.Contains(e.Name(), ".new-"), "temp dir left behind: %s", e.Name())
	}
}

func TestRegisterFailureRollsBack(t *testing.T) {
	m, _ := liveScan(t)
	err := m.Register(render.Slot{Name: "bad/name", Command: render.Lit("x")})
	assert.ErrorContains(t, err, "invalid slot name")
	entries, _ := os.ReadDir(m.ScanDir)
	for _, e := range entries {
		assert.Check(t, strings.HasPrefix(e.Name(), ".s6-svscan"), "left behind: %s", e.Name())
	}
}

func TestCommandsOnMissingSlot(t *testing.T) {
	m := New(t.TempDir())
	for name, f := range map[string]func() error{
		"start":   func() error { return m.Start("gateway-x") },
		"stop":    func() error { return m.Stop("gateway-x", false) },
		"restart": func() error { return m.Restart("gateway-x") },
		"down":    func() error { return m.MarkDown("gateway-x") },
	} {
		assert.Check(t, errors.Is(f(), ErrNoSlot), name)
	}
}

func TestGroupControlPreparedBeforeSupervise(t *testing.T) {
	// What `s6-svperms -G` grants, and nothing more: the directory, its
	// scripts and event/ stay root's (s6-supervise runs and writes them as
	// root); the logger is not the group's at all.
	dir := t.TempDir()
	assert.NilError(t, render.Write(dir, render.GatewaySlot("default")))
	gid := os.Getgid() + 1
	assert.NilError(t, PrepareControl(dir, gid))
	for _, c := range []struct {
		p    string
		mode os.FileMode
		gid  int
	}{
		{".", os.ModeDir | 0o755, os.Getgid()},
		{"run", 0o755, os.Getgid()},
		{"supervise", os.ModeDir | 0o750, gid},
		{"supervise/control", os.ModeNamedPipe | 0o620, gid},
		{"log", os.ModeDir | 0o755, os.Getgid()},
	} {
		st, err := os.Lstat(filepath.Join(dir, c.p))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(st.Mode(), c.mode), c.p)
		assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Gid), c.gid), c.p)
	}
}

func TestUnregisterLeavesWhatIsNotASlotAlone(t *testing.T) {
	m := New(t.TempDir())
	assert.NilError(t, os.MkdirAll(filepath.Join(m.ScanDir, "gateway-default-log"), 0o755))
	err := m.Unregister("gateway-default-log")
	assert.Check(t, is.ErrorContains(err, "not a Hermes slot"))
	assert.Check(t, m.Exists("gateway-default-log"))
}

func TestErrorSaysCommandAndCode(t *testing.T) {
	m := New(t.TempDir())
	_, err := m.run("sh", "-c", "echo boom >&2; exit 3")
	var e *Error
	assert.Assert(t, errors.As(err, &e))
	assert.Check(t, is.Equal(e.Code, 3))
	assert.Check(t, is.ErrorContains(err, "sh -c"))
	assert.Check(t, is.ErrorContains(err, "exit code 3: boom"))
}
