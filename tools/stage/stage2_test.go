package stage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// stage2 runs Stage2 against stand-ins for s6-svscanctl and s6-svwait and
// waits until it halts the container; it returns the recorded exit code and
// the s6 calls. Stage2 never returns (it waits for stage 3 to kill it), so
// it is left blocked in its goroutine.
func stage2(t *testing.T, p Paths, calls string, cmd ...string) (code string, s6calls string) {
	t.Helper()
	// halt falls back to signalling PID 1 when s6-svscanctl cannot run:
	// make sure the stand-in runs before Stage2 may need it.
	ctl := filepath.Join(p.BinDir, "s6-svscanctl")
	assert.NilError(t, exec.Command(ctl, "-z", "self-check").Run(), "the s6-svscanctl stand-in must run")
	assert.NilError(t, os.Remove(calls))
	assert.NilError(t, os.MkdirAll(filepath.Dir(p.ExitCodeF), 0o755)) // made by stage 1
	listenControl(t, p.ScanDir)                                       // s6-svscan is up
	t.Chdir(t.TempDir())                                              // Stage2 changes directory: restore it afterwards

	go Stage2(p, cmd)

	poll.WaitOn(t, func(poll.LogT) poll.Result {
		b, _ := os.ReadFile(calls)
		if strings.Contains(string(b), "s6-svscanctl -t "+p.ScanDir+"\n") {
			return poll.Success()
		}
		return poll.Continue("stage 2 has not halted the container: %q", b)
	}, pollOpts...)
	return read(t, p.ExitCodeF), read(t, calls)
}

func TestStage2RunsContInitThenTheCMDAndHaltsWithItsCode(t *testing.T) {
	bin, calls := fakeBin(t, map[string]int{"s6-svscanctl": 0, "s6-svwait": 0})
	p := testPaths(t, bin)
	order := filepath.Join(t.TempDir(), "order")
	write(t, filepath.Join(p.ContInit, "01-setup"), "#!/bin/sh\necho 01-setup >> "+order+"\n", 0o755)
	write(t, filepath.Join(p.ContInit, "02-reconcile"), "#!/bin/sh\necho 02-reconcile >> "+order+"\n", 0o755)
	assert.NilError(t, os.MkdirAll(filepath.Join(p.ScanDir, "main-hermes"), 0o755))
	workdir := t.TempDir()
	write(t, p.WorkdirF, workdir, 0o644)
	t.Setenv("S6_CMD_ARG0", "/bin/sh -c")

	code, s6calls := stage2(t, p, calls, "echo \"CMD in $(pwd)\" >> "+order+"; exit 7")

	assert.Check(t, is.Equal(code, "7"), "the CMD's exit code is the container's")
	assert.Check(t, is.Equal(read(t, order), "01-setup\n02-reconcile\nCMD in "+workdir+"\n"))
	assert.Check(t, is.Equal(s6calls, "s6-svwait -a -u -t 5000 "+filepath.Join(p.ScanDir, "main-hermes")+"\n"+
		"s6-svscanctl -t "+p.ScanDir+"\n"))
}

func TestStage2ExitCodes(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "not-executable")
	write(t, notExecutable, "#!/bin/sh\n", 0o644)
	for _, tc := range []struct {
		name string
		cmd  []string
		want string
		log  string
	}{
		{"killed by a signal", []string{"/bin/sh", "-c", "kill -KILL $$"}, "137", ""},
		{"not found", []string{filepath.Join(dir, "missing")}, "127", "s6-stage: stage2: cannot run " + filepath.Join(dir, "missing") + ": "},
		{"not executable", []string{notExecutable}, "126", "s6-stage: stage2: cannot run " + notExecutable + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, calls := fakeBin(t, map[string]int{"s6-svscanctl": 0, "s6-svwait": 0})
			p := testPaths(t, bin)
			t.Setenv("S6_CMD_ARG0", "")
			var code string
			log := captureStderr(t, func() { code, _ = stage2(t, p, calls, tc.cmd...) })
			assert.Check(t, is.Equal(code, tc.want))
			assert.Check(t, is.Contains(log, tc.log))
		})
	}
}

func TestStage2RunsTheCMDEvenIfTheWorkdirIsGone(t *testing.T) {
	bin, calls := fakeBin(t, map[string]int{"s6-svscanctl": 0, "s6-svwait": 0})
	p := testPaths(t, bin)
	gone := filepath.Join(t.TempDir(), "gone")
	write(t, p.WorkdirF, gone, 0o644)
	t.Setenv("S6_CMD_ARG0", "")
	var code string
	log := captureStderr(t, func() { code, _ = stage2(t, p, calls, "/bin/sh", "-c", "exit 3") })
	assert.Check(t, is.Equal(code, "3"))
	assert.Check(t, is.Contains(log, "s6-stage: stage2: cannot cd to "+gone+": "))
}

// listenControl makes scan look like a running s6-svscan: its control fifo
// has a reader.
func listenControl(t *testing.T, scan string) {
	t.Helper()
	dir := filepath.Join(scan, ".s6-svscan")
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	ctl := filepath.Join(dir, "control")
	assert.NilError(t, syscall.Mkfifo(ctl, 0o600))
	r, err := os.OpenFile(ctl, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	assert.NilError(t, err)
	t.Cleanup(func() { r.Close() })
}
