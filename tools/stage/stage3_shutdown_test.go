package stage

// Stage 3 (.s6-svscan/finish, as PID 1): cont-finish.d, then TERM and CONT
// to everything left, up to S6_KILL_GRACETIME for it to go (returning as
// soon as it has), KILL for the rest, and the recorded exit code.
//
// Stage3 signals every process (kill -1): here its Others are confined to
// one child of the test. These tests are not parallel: Stage3 reaps any
// child of the process.

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// confined is Others reduced to one process (none when pid is 0), recording
// the signals sent.
type confined struct {
	pid  int
	sent *[]syscall.Signal
}

func (c confined) Signal(sig syscall.Signal) {
	*c.sent = append(*c.sent, sig)
	if c.pid > 0 {
		_ = syscall.Kill(c.pid, sig)
	}
}

func (c confined) Alive() bool { return c.pid > 0 && syscall.Kill(c.pid, 0) == nil }

// confine makes Stage3's signals reach pid only and its view of the other
// processes be that one; sent collects the signals sent.
func confine(pid int) (o confined, sent *[]syscall.Signal) {
	sent = new([]syscall.Signal)
	return confined{pid, sent}, sent
}

// runStage3 runs Stage3 in a goroutine and polls for its exit code, so a
// Stage3 that waited out its grace time fails the test.
func runStage3(t *testing.T, p Paths, others Others) int {
	t.Helper()
	done := make(chan int, 1)
	go func() { done <- Stage3(p, others) }()
	var code int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case code = <-done:
			return poll.Success()
		default:
			return poll.Continue("stage 3 has not returned")
		}
	}, pollOpts...)
	return code
}

func gone(t *testing.T, pid int) {
	t.Helper()
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil) // ours to reap unless Stage3 did
	assert.Check(t, is.ErrorIs(syscall.Kill(pid, 0), syscall.ESRCH), "pid %d is still there", pid)
}

func TestStage3RunsContFinishThenEndsWhatIsLeftAndExitsWithTheRecordedCode(t *testing.T) {
	p := testPaths(t, "/command")
	log := filepath.Join(t.TempDir(), "log")
	write(t, filepath.Join(p.ContFinish, "20-second"), "#!/bin/sh\necho second >>"+log+"\n", 0o755)
	write(t, filepath.Join(p.ContFinish, "10-first"), "#!/bin/sh\necho first >>"+log+"\n", 0o755)
	write(t, filepath.Join(p.ContFinish, "15-not-executable"), "#!/bin/sh\necho never >>"+log+"\n", 0o644)
	write(t, p.ExitCodeF, "42\n", 0o644)
	// A grace time far beyond the poll's: Stage3 must return once the
	// process is gone, not when the grace time is over.
	write(t, filepath.Join(p.EnvDir, "S6_KILL_GRACETIME"), "600000\n", 0o644)

	child := exec.Command("sleep", "600")
	assert.NilError(t, child.Start())
	others, sent := confine(child.Process.Pid)

	assert.Equal(t, runStage3(t, p, others), 42)
	assert.Check(t, is.Equal(read(t, log), "first\nsecond\n"))
	assert.Check(t, is.DeepEqual(*sent, []syscall.Signal{syscall.SIGTERM, syscall.SIGCONT}), "no KILL for what went on TERM")
	gone(t, child.Process.Pid)
}

func TestStage3KillsWhatIgnoresTERMAfterTheGraceTime(t *testing.T) {
	p := testPaths(t, "/command")
	write(t, filepath.Join(p.EnvDir, "S6_KILL_GRACETIME"), "0\n", 0o644)
	write(t, p.ExitCodeF, "3", 0o644)
	ready := filepath.Join(t.TempDir(), "ready")
	// TERM stays ignored across exec.
	child := exec.Command("sh", "-c", `trap "" TERM; : >"$1"; exec sleep 600`, "sh", ready)
	assert.NilError(t, child.Start())
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if _, err := os.Stat(ready); err != nil {
			return poll.Continue("child not ready")
		}
		return poll.Success()
	}, pollOpts...)
	others, sent := confine(child.Process.Pid)

	assert.Equal(t, runStage3(t, p, others), 3)
	assert.Check(t, is.DeepEqual(*sent, []syscall.Signal{syscall.SIGTERM, syscall.SIGCONT, syscall.SIGKILL}))
	gone(t, child.Process.Pid)
}

// Without a readable number in the exit code file the container exits 0.
func TestStage3WithoutARecordedCodeExits0(t *testing.T) {
	for _, content := range []string{"", "not a number\n"} {
		p := testPaths(t, "/command")
		if content != "" {
			write(t, p.ExitCodeF, content, 0o644)
		}
		others, sent := confine(0)
		assert.Check(t, is.Equal(runStage3(t, p, others), 0), "%q", content)
		assert.Check(t, is.Len(*sent, 2))
	}
}
