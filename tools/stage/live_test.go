package stage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// livePaths are the stage layer's paths around a live s6-svscan, with the
// host's s6 (Debian's) as BinDir.
func livePaths(t *testing.T, scan s6test.Scan) Paths {
	t.Helper()
	svscan, err := exec.LookPath("s6-svscan")
	assert.NilError(t, err)
	root := filepath.Dir(scan.Dir)
	return Paths{
		Run:     root,
		ScanDir: scan.Dir,
		EnvDir:  filepath.Join(root, "s6/container_environment"),
		RcInit:  filepath.Join(root, "s6/basedir/scripts/rc.init"),
		DB:      filepath.Join(root, "s6/db"),
		LiveDir: filepath.Join(root, "s6-rc"),
		RcD:     filepath.Join(root, "s6-rc.d"),
		BinDir:  filepath.Dir(svscan),
	}
}

func svstat(t *testing.T, p Paths, name string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(p.BinDir, "s6-svstat"), "-o", "up,ready", filepath.Join(p.ScanDir, name)).Output()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

// waitReady waits until the services are up and, those with a
// notification-fd, ready.
func waitReady(t *testing.T, p Paths, names ...string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, n := range names {
			want := "true false"
			if _, err := os.Stat(filepath.Join(p.ScanDir, n, "notification-fd")); err == nil {
				want = "true true"
			}
			if got := svstat(t, p, n); got != want {
				return poll.Continue("%s: %s", n, got)
			}
		}
		return poll.Success()
	}, pollOpts...)
}

func TestLaidServicesRunUnderDebianS6(t *testing.T) {
	scan := s6test.Start(t)
	p := livePaths(t, scan)
	logged := filepath.Join(filepath.Dir(scan.Dir), "logged")
	longrun := func(name, run string) {
		write(t, filepath.Join(p.RcD, name, "type"), "longrun\n", 0o644)
		write(t, filepath.Join(p.RcD, name, "run"), "#!/bin/sh\n"+run, 0o755)
	}
	longrun("main-hermes", "exec sleep 100000\n")
	longrun("hermes-admin", "echo >&3\nexec sleep 100000\n")
	write(t, filepath.Join(p.RcD, "hermes-admin", "notification-fd"), "3\n", 0o644)
	longrun("gateway-default", "echo hello through the pipe\nexec sleep 100000\n")
	write(t, filepath.Join(p.RcD, "gateway-default", "producer-for"), "gateway-default-log\n", 0o644)
	longrun("gateway-default-log", "exec cat > "+logged+"\n")
	write(t, filepath.Join(p.RcD, "gateway-default-log", "consumer-for"), "gateway-default\n", 0o644)
	write(t, filepath.Join(p.RcD, "gateway-default-log", "pipeline-name"), "gateway-default-pipeline\n", 0o644)
	longrun("spare", "exec sleep 100000\n")
	for _, n := range []string{"main-hermes", "hermes-admin", "gateway-default-pipeline"} {
		write(t, filepath.Join(p.RcD, "user", "contents.d", n), "", 0o644)
	}
	write(t, filepath.Join(p.RcD, "user", "type"), "bundle\n", 0o644)

	assert.NilError(t, LayServices(p))
	icmd.RunCommand(filepath.Join(p.BinDir, "s6-svscanctl"), "-a", p.ScanDir).Assert(t, icmd.Success)
	t.Setenv("S6_VERBOSITY", "2")
	var code int
	base := false
	log := captureStderr(t, func() { code = BootServices(p, func() { base = true }) })

	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, base, "base (cont-init.d) is called")
	up := []string{OneshotRunner, FDHolder, "gateway-default-log", "gateway-default", "hermes-admin", "main-hermes"}
	for _, n := range up {
		assert.Check(t, is.Contains(log, "s6-rc: info: service "+n+": starting\ns6-rc: info: service "+n+" successfully started\n"))
		_, err := os.Stat(filepath.Join(p.ScanDir, n, "down"))
		assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "s6-rc removes the down file of %s", n)
	}
	waitReady(t, p, append(up, Shutdownd)...)
	assert.Check(t, is.Equal(svstat(t, p, "spare"), "false false"), "not in the user bundle: down")
	_, err := os.Stat(filepath.Join(p.ScanDir, "spare", "down"))
	assert.Check(t, err)

	// The producer's output reaches its logger through the pipe s6rc-fdholder holds.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if b, _ := os.ReadFile(logged); string(b) == "hello through the pipe\n" {
			return poll.Success()
		}
		return poll.Continue("nothing logged yet")
	}, pollOpts...)
	list := icmd.RunCommand(filepath.Join(p.BinDir, "s6-fdholder-list"), filepath.Join(p.ScanDir, FDHolder, "s"))
	list.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(list.Stdout(), "pipe:s6rc-r-gateway-default-log\npipe:s6rc-w-gateway-default-log\n"))

	// The oneshot runner serves, and refuses what it cannot run.
	res := icmd.RunCommand(filepath.Join(p.BinDir, "s6-sudo"), "-e", "-t", "30000", "-T", "5000", "--",
		filepath.Join(p.LiveDir, "servicedirs", OneshotRunner, "s"), "up", "0")
	res.Assert(t, icmd.Expected{ExitCode: 100, Err: OneshotRunner + ": fatal: no s6-rc-oneshot-run in this image"})
}

func TestBootServicesStopsAtAFailure(t *testing.T) {
	scan := s6test.Start(t)
	p := livePaths(t, scan)
	longrun := func(name, run string) {
		write(t, filepath.Join(p.RcD, name, "type"), "longrun\n", 0o644)
		write(t, filepath.Join(p.RcD, name, "run"), "#!/bin/sh\n"+run, 0o755)
	}
	// Never ready within its timeout-up.
	longrun("stuck", "exec sleep 100000\n")
	write(t, filepath.Join(p.RcD, "stuck", "notification-fd"), "3\n", 0o644)
	write(t, filepath.Join(p.RcD, "stuck", "timeout-up"), "200\n", 0o644)
	longrun("after", "exec sleep 100000\n")
	write(t, filepath.Join(p.RcD, "after", "dependencies.d", "stuck"), "", 0o644)
	write(t, filepath.Join(p.RcD, "user", "type"), "bundle\n", 0o644)
	write(t, filepath.Join(p.RcD, "user", "contents.d", "after"), "", 0o644)
	assert.NilError(t, LayServices(p))
	icmd.RunCommand(filepath.Join(p.BinDir, "s6-svscanctl"), "-a", p.ScanDir).Assert(t, icmd.Success)

	t.Setenv("S6_VERBOSITY", "1")
	t.Setenv("S6_BEHAVIOUR_IF_STAGE2_FAILS", "2")
	var code int
	log := captureStderr(t, func() { code = BootServices(p, func() {}) })
	assert.Check(t, is.Equal(code, 1), "S6_BEHAVIOUR_IF_STAGE2_FAILS=2 stops the container")
	assert.Check(t, is.Contains(log, "s6-rc: warning: unable to start service stuck: command exited "))
	assert.Check(t, is.Contains(log, p.RcInit+": warning: s6-rc failed to properly bring all the services up!"))
	assert.Check(t, is.Contains(log, p.RcInit+": fatal: stopping the container.\n"))
	assert.Check(t, !strings.Contains(log, "info:"), "S6_VERBOSITY=1: warnings only")
	for _, n := range []string{"stuck", "after"} {
		_, err := os.Stat(filepath.Join(p.ScanDir, n, "down"))
		assert.Check(t, err, "%s stays down", n)
	}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if got := svstat(t, p, "stuck"); got != "false false" {
			return poll.Continue("stuck: %s", got)
		}
		return poll.Success()
	}, pollOpts...)
	assert.Check(t, is.Equal(svstat(t, p, "after"), "false false"), "what needs a failed service is not started")
}

func TestShutdowndStandInHaltsTheContainer(t *testing.T) {
	scan := s6test.Start(t)
	p := livePaths(t, scan)
	assert.NilError(t, LayServices(p))
	ctl := filepath.Join(p.BinDir, "s6-svscanctl")
	icmd.RunCommand(ctl, "-a", p.ScanDir).Assert(t, icmd.Success)
	waitReady(t, p, Shutdownd)

	f, err := os.OpenFile(filepath.Join(p.ScanDir, Shutdownd, "fifo"), os.O_WRONLY, 0)
	assert.NilError(t, err)
	_, err = f.Write([]byte("H"))
	assert.NilError(t, err)
	assert.NilError(t, f.Close())

	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if exec.Command(ctl, "-a", p.ScanDir).Run() != nil {
			return poll.Success()
		}
		return poll.Continue("s6-svscan still runs")
	}, pollOpts...)
}
