package s6test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

func TestMain(m *testing.M) { Main(m) }

var waitOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(10 * time.Millisecond)}

// goneCheck polls until pid no longer runs: it does not exist, or it is a
// zombie its new parent has not reaped yet.
func goneCheck(pid int) poll.Check {
	return func(poll.LogT) poll.Result {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if errors.Is(err, os.ErrNotExist) {
			return poll.Success()
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return poll.Success()
		}
		return poll.Continue("pid %d still runs", pid)
	}
}

func fileWritten(path string) poll.Check {
	return func(poll.LogT) poll.Result {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return poll.Continue("no pid in %s yet", path)
		}
		return poll.Success()
	}
}

// Start gives a scan directory that s6-svscan supervises, with HERMES_HOME
// set to Home for its services; when the test ends, s6-svscan and every
// service it started are gone.
func TestStartSupervisesAndLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	var svscan, service int
	t.Run("live", func(t *testing.T) {
		s := Start(t)
		run := "#!/bin/sh\necho \"$HERMES_HOME $$\" > " + out + ".tmp && mv " + out + ".tmp " + out + "\nexec sleep 600\n"
		assert.NilError(t, os.MkdirAll(filepath.Join(s.Dir, "svc"), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(s.Dir, "svc", "run"), []byte(run), 0o755))
		assert.NilError(t, exec.Command("s6-svscanctl", "-a", s.Dir).Run())
		poll.WaitOn(t, fileWritten(out), waitOpts...)

		b, err := os.ReadFile(out)
		assert.NilError(t, err)
		f := strings.Fields(string(b))
		assert.Assert(t, is.Len(f, 2))
		assert.Check(t, is.Equal(f[0], s.Home), "services see HERMES_HOME")
		service, err = strconv.Atoi(f[1])
		assert.NilError(t, err)
		svscan = pidOf(t, "s6-svscan", s.Dir)
	})
	assert.Assert(t, service > 0 && svscan > 0)
	poll.WaitOn(t, goneCheck(service), waitOpts...)
	poll.WaitOn(t, goneCheck(svscan), waitOpts...)
}

// pidOf finds the process running name with arg on its command line.
func pidOf(t *testing.T, name, arg string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	assert.NilError(t, err)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(argv) == 2 && argv[0] == name && argv[1] == arg {
			return pid
		}
	}
	t.Fatalf("no %s %s running", name, arg)
	return 0
}

// execd polls until pid runs prog (it has exec'd it: between fork and
// exec a child still shows the test binary's directory and command line).
func execd(pid int, prog string) poll.Check {
	return func(poll.LogT) poll.Result {
		exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		if filepath.Base(exe) == prog {
			return poll.Success()
		}
		return poll.Continue("pid %d runs %q", pid, exe)
	}
}

// KillUnder kills what runs in a directory under root, or names a path under
// root, and nothing else.
func TestKillUnderKillsOnlyWhatIsUnderRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	marker := filepath.Join(root, "marker")
	assert.NilError(t, os.WriteFile(marker, nil, 0o644))
	inside := exec.Command("sleep", "600")
	inside.Dir = root
	named := exec.Command("tail", "-f", marker)
	outside := exec.Command("sleep", "600")
	outside.Dir = t.TempDir()
	for _, c := range []*exec.Cmd{inside, named, outside} {
		assert.NilError(t, c.Start())
	}
	t.Cleanup(func() {
		for _, c := range []*exec.Cmd{inside, named, outside} {
			_ = c.Process.Kill()
		}
		_ = outside.Wait()
	})
	poll.WaitOn(t, execd(inside.Process.Pid, "sleep"), waitOpts...)
	poll.WaitOn(t, execd(named.Process.Pid, "tail"), waitOpts...)
	poll.WaitOn(t, execd(outside.Process.Pid, "sleep"), waitOpts...)

	KillUnder(root)
	for _, c := range []*exec.Cmd{inside, named} {
		err := c.Wait()
		var ee *exec.ExitError
		assert.Assert(t, errors.As(err, &ee), "%v", err)
		ws := ee.Sys().(syscall.WaitStatus)
		assert.Check(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%v", ws)
	}
	assert.Check(t, outside.Process.Signal(syscall.Signal(0)) == nil, "a process outside root is left alone")
}

// Tool builds hermes-s6 from this tree once per test process: the binary
// it gives runs, and a second call gives the same file.
func TestToolBuildsHermesS6Once(t *testing.T) {
	t.Parallel()
	path := Tool(t)
	assert.Check(t, is.Equal(Tool(t), path))
	st, err := os.Stat(path)
	assert.NilError(t, err)
	before := st.ModTime()
	out, err := exec.Command(path, "no-such-command").CombinedOutput()
	var ee *exec.ExitError
	assert.Assert(t, errors.As(err, &ee), "%v", err)
	assert.Check(t, is.Equal(ee.ExitCode(), 2))
	assert.Check(t, is.Contains(string(out), `hermes-s6: unknown command "no-such-command"`))
	st, err = os.Stat(Tool(t))
	assert.NilError(t, err)
	assert.Check(t, st.ModTime().Equal(before), "not built again")
}
