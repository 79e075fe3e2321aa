package slotexec

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// realLogger starts the host's s6-log on dir and waits until it holds the
// directory's lock; it is killed at cleanup.
func realLogger(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	if _, err := exec.LookPath("s6-log"); err != nil {
		t.Skip("s6-log is not installed on this host")
	}
	cmd := exec.Command("s6-log", "--", dir)
	in, err := cmd.StdinPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); in.Close(); cmd.Wait() })
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if pid, _ := lockHolder(filepath.Join(dir, "lock")); pid == cmd.Process.Pid {
			return poll.Success()
		}
		return poll.Continue("s6-log does not hold the lock yet")
	}, poll.WithTimeout(10*time.Second))
	return cmd, in
}

func TestFreeLogDirEndsTheOrphanHoldingTheLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	orphan, in := realLogger(t, dir)
	_, err := io.WriteString(in, "a line the orphan read\n")
	assert.NilError(t, err)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if b, _ := os.ReadFile(filepath.Join(dir, "current")); len(b) > 0 {
			return poll.Success()
		}
		return poll.Continue("the orphan has not written its line yet")
	}, poll.WithTimeout(10*time.Second))

	pid, err := FreeLogDir(dir, func(p int) bool { return p == orphan.Process.Pid }, 2*time.Second)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(pid, orphan.Process.Pid))
	holder, err := lockHolder(filepath.Join(dir, "lock"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(holder, 0), "the lock must be free for the new logger")

	// The new logger takes the directory at once, and what the orphan
	// wrote is kept.
	realLogger(t, dir)
	b, err := os.ReadFile(filepath.Join(dir, "current"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), "a line the orphan read"))
}

func TestFreeLogDirLeavesALiveLoggerAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	live, _ := realLogger(t, dir)
	pid, err := FreeLogDir(dir, func(int) bool { return false }, 2*time.Second)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(pid, 0))
	holder, _ := lockHolder(filepath.Join(dir, "lock"))
	assert.Check(t, is.Equal(holder, live.Process.Pid), "a logger that is not an orphan keeps its lock")
}

func TestFreeLogDirWithoutLockDoesNothing(t *testing.T) {
	pid, err := FreeLogDir(filepath.Join(t.TempDir(), "none"), func(int) bool { t.Fatal("no holder to ask about"); return false }, time.Second)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(pid, 0))
}

func TestOrphanedLoggerKnowsItsParent(t *testing.T) {
	// This test's own process is neither an s6-log nor PID 1's child.
	assert.Check(t, !OrphanedLogger(os.Getpid()))
	assert.Check(t, !OrphanedLogger(1<<30), "no such process")
}
