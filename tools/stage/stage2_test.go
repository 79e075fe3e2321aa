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

// stage2 runs Stage2 against stand-ins for s6-svscanctl and s6-svc, on
// the services of p.RcD laid and looking supervised, and waits until it
// halts the container; it returns the recorded exit code and the s6 calls.
// Stage2 never returns (it waits for stage 3 to kill it), so it is left
// blocked in its goroutine.
func stage2(t *testing.T, p Paths, calls string, cmd ...string) (code string, s6calls string) {
	t.Helper()
	// halt falls back to signalling PID 1 when s6-svscanctl cannot run:
	// make sure the stand-in runs before Stage2 may need it.
	ctl := filepath.Join(p.BinDir, "s6-svscanctl")
	assert.NilError(t, exec.Command(ctl, "-z", "self-check").Run(), "the s6-svscanctl stand-in must run")
	assert.NilError(t, os.Remove(calls))
	assert.NilError(t, os.MkdirAll(filepath.Dir(p.ExitCodeF), 0o755)) // made by stage 1
	assert.NilError(t, LayServices(p))                                // made by stage 1
	supervised(t, p)
	listenControl(t, p.ScanDir) // s6-svscan is up
	t.Chdir(t.TempDir())        // Stage2 changes directory: restore it afterwards

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

// supervised makes every laid s6-rc service look supervised: its
// supervise/control fifo has a reader.
func supervised(t *testing.T, p Paths) {
	t.Helper()
	sd := filepath.Join(p.LiveDir, "servicedirs")
	entries, err := os.ReadDir(sd)
	assert.NilError(t, err)
	for _, e := range entries {
		dir := filepath.Join(sd, e.Name(), "supervise")
		assert.NilError(t, os.Mkdir(dir, 0o700))
		ctl := filepath.Join(dir, "control")
		assert.NilError(t, syscall.Mkfifo(ctl, 0o600))
		r, err := os.OpenFile(ctl, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		assert.NilError(t, err)
		t.Cleanup(func() { r.Close() })
	}
}

func TestStage2RunsContInitThenTheCMDAndHaltsWithItsCode(t *testing.T) {
	bin, calls := fakeBin(t, map[string]int{"s6-svscanctl": 0, "s6-svc": 0})
	p := testPaths(t, bin)
	rcTree(t, p.RcD)
	write(t, filepath.Join(p.RcD, "user", "contents.d", "main-hermes"), "", 0o644)
	order := filepath.Join(t.TempDir(), "order")
	write(t, filepath.Join(p.ContInit, "01-setup"), "#!/bin/sh\necho 01-setup >> "+order+"\necho cont-init >> "+calls+"\n", 0o755)
	write(t, filepath.Join(p.ContInit, "02-reconcile"), "#!/bin/sh\necho 02-reconcile >> "+order+"\n", 0o755)
	workdir := t.TempDir()
	write(t, p.WorkdirF, workdir, 0o644)
	t.Setenv("S6_CMD_ARG0", "/bin/sh -c")
	t.Setenv("S6_VERBOSITY", "1")

	code, s6calls := stage2(t, p, calls, "echo \"CMD in $(pwd)\" >> "+order+"; exit 7")

	assert.Check(t, is.Equal(code, "7"), "the CMD's exit code is the container's")
	assert.Check(t, is.Equal(read(t, order), "01-setup\n02-reconcile\nCMD in "+workdir+"\n"))
	sd := filepath.Join(p.LiveDir, "servicedirs")
	assert.Check(t, is.Equal(s6calls, "s6-svc -uwU -T 0 -- "+filepath.Join(sd, OneshotRunner)+"\n"+
		"cont-init\n"+
		"s6-svc -uwu -T 4000 -- "+filepath.Join(sd, "main-hermes")+"\n"+
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

func TestBootServicesStartsThePlanAndRemovesItsDownFiles(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	// s6-svc stands in: it records its arguments and fails for hermes-admin.
	write(t, filepath.Join(bin, "s6-svc"), "#!/bin/sh\necho \"s6-svc $*\" >> "+calls+"\ncase \"$*\" in */hermes-admin) exit 3 ;; esac\n", 0o755)
	p := testPaths(t, bin)
	rcTree(t, p.RcD)
	for _, n := range []string{"main-hermes", "gateway-default", "hermes-admin"} {
		write(t, filepath.Join(p.RcD, "user", "contents.d", n), "", 0o644)
	}
	write(t, filepath.Join(p.RcD, "main-hermes", "dependencies.d", "hermes-admin"), "", 0o644)
	assert.NilError(t, LayServices(p))
	supervised(t, p)
	t.Setenv("S6_VERBOSITY", "2")
	t.Setenv("S6_BEHAVIOUR_IF_STAGE2_FAILS", "")
	t.Setenv("S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "")

	var code int
	log := captureStderr(t, func() {
		code = BootServices(p, func() { write(t, calls, read(t, calls)+"base\n", 0o644) })
	})

	assert.Check(t, is.Equal(code, 0), "S6_BEHAVIOUR_IF_STAGE2_FAILS=0: a failure does not stop the container")
	sd := filepath.Join(p.LiveDir, "servicedirs")
	assert.Check(t, is.Equal(read(t, calls), ""+
		"s6-svc -uwU -T 0 -- "+filepath.Join(sd, OneshotRunner)+"\n"+
		"base\n"+
		"s6-svc -uwU -T 0 -- "+filepath.Join(sd, "hermes-admin")+"\n"+
		"s6-svc -d -- "+filepath.Join(sd, "hermes-admin")+"\n"+
		"s6-svc -uwU -T 0 -- "+filepath.Join(sd, FDHolder)+"\n"+
		"s6-svc -uwU -T 0 -- "+filepath.Join(sd, "gateway-default-log")+"\n"+
		"s6-svc -uwu -T 0 -- "+filepath.Join(sd, "gateway-default")+"\n"),
		"main-hermes needs hermes-admin, which failed: it is not started")
	for n, down := range map[string]bool{OneshotRunner: false, FDHolder: false, "gateway-default-log": false, "gateway-default": false, "hermes-admin": true, "main-hermes": true} {
		_, err := os.Stat(filepath.Join(sd, n, "down"))
		assert.Check(t, is.Equal(err == nil, down), "%s down", n)
	}
	assert.Check(t, is.Contains(log, "s6-rc: info: service gateway-default: starting\ns6-rc: info: service gateway-default successfully started\n"))
	assert.Check(t, is.Contains(log, "s6-rc: warning: unable to start service hermes-admin: command exited 3\n"))
	assert.Check(t, !strings.Contains(log, "main-hermes"))
}
