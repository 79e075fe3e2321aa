package slotexec

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// A second container on the same volume finds the log directory held by
// the first one's s6-log (a real one here): its logger keeps to docker logs
// instead of dying on s6-log's lock every second.
// recorded is what the fake exec makes LogMain print.
const recorded = "slot-log: cannot run s6-log: exec recorded\n"

func TestLogDirHeldByAnotherLoggerFallsBackToDockerLogsOnly(t *testing.T) {
	s6log, err := exec.LookPath("s6-log")
	if err != nil {
		t.Skip("s6 is not installed (apt-get install s6): ", err)
	}
	home := t.TempDir()
	dir := LogDir(home, "work")
	f := newFake(t, 0, []string{"PATH=BIN", "HERMES_HOME=" + home})
	f.Mkdir = func(string) error { return nil }
	assert.Check(t, !logDirBusy(dir), "no directory yet: free")

	assert.NilError(t, os.MkdirAll(dir, 0o755))
	first := exec.Command(s6log, "--", dir)
	in, err := first.StdinPipe()
	assert.NilError(t, err)
	assert.NilError(t, first.Start())
	t.Cleanup(func() { in.Close(); first.Wait() })
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if logDirBusy(dir) {
			return poll.Success()
		}
		return poll.Continue("s6-log has not locked %s yet", dir)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))

	f.LogMain([]string{"-user", "hermes", "work"})
	assert.Check(t, is.DeepEqual(f.exec[1:], []string{"s6-log", "--", "1"}))
	assert.Check(t, is.Equal(f.stderr.String(), "slot-log: work: "+dir+" is in use by another logger (another container on this volume): logging to docker logs only\n"+recorded))

	// Once it is gone, the directory is this logger's.
	in.Close()
	assert.NilError(t, first.Wait())
	assert.Check(t, !logDirBusy(dir))
	f.stderr.Reset()
	f.LogMain([]string{"-user", "hermes", "work"})
	assert.Check(t, is.DeepEqual(f.exec[1:], []string{"s6-log", "--", "1", "T", "s1048576", "n10", filepath.Clean(dir)}))
	assert.Check(t, is.Equal(f.stderr.String(), recorded), "no warning")
}
