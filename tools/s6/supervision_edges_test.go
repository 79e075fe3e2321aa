package s6

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/render"
)

func TestUnderPID1(t *testing.T) {
	proc, scan := t.TempDir(), t.TempDir()
	comm := filepath.Join(proc, "1", "comm")
	assert.Check(t, !UnderPID1(proc, scan), "no /proc/1/comm")

	assert.NilError(t, os.MkdirAll(filepath.Dir(comm), 0o755))
	assert.NilError(t, os.WriteFile(comm, []byte("s6-svscan\n"), 0o644))
	assert.Check(t, !UnderPID1(proc, scan), "s6-svscan, but not on this scan directory")

	assert.NilError(t, os.Mkdir(filepath.Join(scan, ".s6-svscan"), 0o755))
	assert.Check(t, UnderPID1(proc, scan))

	for _, other := range []string{"tini\n", "s6-svscan-not\n", "sh\n"} {
		assert.NilError(t, os.WriteFile(comm, []byte(other), 0o644))
		assert.Check(t, !UnderPID1(proc, scan), "PID 1 is %q", other)
	}
}

func TestBinDirAndDefaults(t *testing.T) {
	m := &Manager{ScanDir: t.TempDir(), BinDir: "/usr/bin"}
	assert.Check(t, is.Equal(m.bin("s6-svc"), "/usr/bin/s6-svc"))
	assert.Check(t, is.Equal(m.timeout(), 10*time.Second), "zero Timeout means the default")

	m.BinDir = filepath.Join(t.TempDir(), "missing")
	err := m.Rescan()
	var se *Error
	assert.Check(t, !errors.As(err, &se), "a command that cannot start is not an s6 exit code")
	assert.Check(t, is.ErrorContains(err, "s6-svscanctl: "))
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	err := renameNoReplace(filepath.Join(dir, "missing"), filepath.Join(dir, "to"))
	var le *os.LinkError
	assert.Check(t, errors.As(err, &le))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))
}

func TestSlotsAreWhatSaysItIsASlot(t *testing.T) {
	// What real s6-overlay puts in /run/service beside the slots: s6-rc's
	// longruns as symlinks to their live directories, a logger as its own
	// NAME-log entry, s6-overlay's internal services; none is a slot,
	// whatever its name.
	scan := t.TempDir()
	m := New(scan)
	assert.NilError(t, m.Install(render.GatewaySlot("a")))
	assert.NilError(t, m.Install(render.DashboardSlot()))
	live := t.TempDir()
	for _, d := range []string{"main-hermes", "gateway-b"} {
		assert.NilError(t, render.Write(filepath.Join(live, d), render.GatewaySlot("b")))
		assert.NilError(t, os.Symlink(filepath.Join(live, d), filepath.Join(scan, d)))
	}
	for _, d := range []string{"gateway-a-log", "gateway-default-log", "s6rc-oneshot-runner", "s6rc-fdholder", "s6-linux-init-shutdownd", ".s6-svscan", ".gateway-c.new-123"} {
		assert.NilError(t, os.Mkdir(filepath.Join(scan, d), 0o755))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(scan, "gateway-file"), nil, 0o644))
	assert.NilError(t, os.Mkdir(filepath.Join(scan, "gateway-forged"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(scan, "gateway-forged", render.IdentityFile), []byte("logger x\n"), 0o644))

	slots, err := m.Slots()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(slots, []SlotRef{
		{"dashboard", render.Identity{Kind: render.KindDashboard}},
		{"gateway-a", render.Identity{Kind: render.KindGateway, Profile: "a"}},
	}))
	assert.Check(t, m.IsSlot("gateway-a"))
	for _, d := range []string{"gateway-b", "gateway-a-log", "s6rc-fdholder", "gateway-forged", "missing"} {
		assert.Check(t, !m.IsSlot(d), d)
	}

	_, err = New(filepath.Join(scan, "missing")).Slots()
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))
}

func TestRegisterWithoutSvscanLeavesNothing(t *testing.T) {
	s6test.Need(t)
	scan := t.TempDir()
	m := New(scan)
	err := m.Register(render.GatewaySlot("work"))
	assert.Check(t, is.ErrorContains(err, "register gateway-work: s6-svscanctl -an "+scan))
	entries, _ := os.ReadDir(scan)
	assert.Check(t, is.Len(entries, 0), "nothing left behind")
}

func TestInstallErrors(t *testing.T) {
	m := New(filepath.Join(t.TempDir(), "missing"))
	err := m.Install(render.GatewaySlot("work"))
	assert.Check(t, is.ErrorContains(err, "register gateway-work: "))

	m = New(t.TempDir())
	assert.NilError(t, m.Install(render.GatewaySlot("work")))
	err = m.Install(render.GatewaySlot("work"))
	assert.Check(t, is.ErrorIs(err, ErrExists))
}

func TestCommandsOnAnUnsupervisedSlot(t *testing.T) {
	s6test.Need(t)
	m := New(t.TempDir())
	m.Timeout = 100 * time.Millisecond
	assert.NilError(t, m.Install(render.GatewaySlot("work")))
	var se *Error
	for name, f := range map[string]func() error{
		"status": func() error { _, err := m.Status("gateway-work"); return err },
		"stop":   func() error { return m.Stop("gateway-work", true) },
		"down":   func() error { return m.MarkDown("gateway-work") },
		"start":  func() error { return m.Start("gateway-work") },
	} {
		err := f()
		assert.Check(t, errors.As(err, &se), "%s: %v", name, err)
	}
	err := m.WaitSupervised("gateway-work")
	assert.Check(t, is.ErrorContains(err, "register gateway-work: s6-supervise did not start within 100ms"))
	err = m.Unregister("gateway-work")
	assert.Check(t, errors.As(err, &se), "unregister stops first: %v", err)
	assert.Check(t, m.Exists("gateway-work"), "and keeps the slot when it cannot")
}

func TestMarkersStartStopAndRestartOfADownSlot(t *testing.T) {
	m, home := liveScan(t)
	assert.NilError(t, m.Register(testSlot(t, fakeFront(t, home), "work")))

	// Restart of a down slot starts it, and returns once s6 took it.
	assert.NilError(t, m.Restart("gateway-work"))
	st, err := m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, st.WantUp, "%s", st)
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return s.Up }, "up"), pollOpts...)

	// Stop without waiting returns once s6 took the command.
	assert.NilError(t, m.Stop("gateway-work", false))
	st, err = m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, !st.WantUp, "%s", st)
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return !s.Up }, "down"), pollOpts...)

	// Start only sends the command: the down marker is root's business
	// (MarkUp, MarkDown, SetNormallyUp).
	assert.NilError(t, m.Start("gateway-work"))
	_, err = os.Stat(filepath.Join(m.Dir("gateway-work"), "down"))
	assert.Check(t, err, "Start leaves the down marker")
	assert.NilError(t, m.MarkUp("gateway-work"))
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return s.Up && s.NormallyUp }, "up, normally up"), pollOpts...)

	// MarkDown: down now, and down when the supervisor starts again.
	assert.NilError(t, m.MarkDown("gateway-work"))
	poll.WaitOn(t, statusIs(m, "gateway-work", func(s Status) bool { return !s.Up && !s.WantUp && !s.NormallyUp }, "down, normally down"), pollOpts...)

	// SetNormallyUp only moves the marker.
	assert.NilError(t, m.SetNormallyUp("gateway-work", true))
	_, err = os.Stat(filepath.Join(m.Dir("gateway-work"), "down"))
	assert.Check(t, os.IsNotExist(err))
	assert.NilError(t, m.SetNormallyUp("gateway-work", false))
	_, err = os.Stat(filepath.Join(m.Dir("gateway-work"), "down"))
	assert.Check(t, err)
	st, err = m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, !st.Up && !st.WantUp, "no command was sent: %s", st)

	// A wait on a slot that does not get there gives up after the timeout.
	m.Timeout = 200 * time.Millisecond
	err = m.waitStatus("gateway-work", "up", func(s Status) bool { return s.Up })
	assert.Check(t, is.ErrorContains(err, "gateway-work: not up within 200ms"))
}

func TestStopReturnsOnceDownEvenIfTheFinishScriptIsSlow(t *testing.T) {
	m, home := liveScan(t)
	slot := testSlot(t, fakeFront(t, home), "slow")
	assert.NilError(t, m.Install(slot))
	finish := filepath.Join(m.Dir("gateway-slow"), "finish")
	assert.NilError(t, os.WriteFile(finish, []byte("#!/bin/sh\nexec sleep 2\n"), 0o755))
	assert.NilError(t, m.Rescan())
	assert.NilError(t, m.WaitSupervised("gateway-slow"))
	assert.NilError(t, m.Start("gateway-slow"))
	poll.WaitOn(t, statusIs(m, "gateway-slow", func(s Status) bool { return s.Up }, "up"), pollOpts...)

	m.Timeout = 300 * time.Millisecond
	start := time.Now()
	assert.NilError(t, m.Stop("gateway-slow", true), "the service is down; only its finish script still runs")
	assert.Check(t, time.Since(start) < 2*time.Second, "stop did not wait for the finish script: %s", time.Since(start))
	st, err := m.Status("gateway-slow")
	assert.NilError(t, err)
	assert.Check(t, !st.Up, "%s", st)
}

func TestPrepareControlLeavesTheLoggerAndEventsToRoot(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, render.Write(dir, render.GatewaySlot("default")))
	assert.NilError(t, PrepareControl(dir, -1))
	st, err := os.Lstat(filepath.Join(dir, "supervise", "control"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode(), os.ModeNamedPipe|0o600), "-1 leaves s6's own modes")
	for _, p := range []string{"event", "log/supervise", "log/event"} {
		_, err = os.Lstat(filepath.Join(dir, p))
		assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "%s is left to s6-supervise (root's)", p)
	}
	// Preparing again keeps the existing fifo.
	assert.NilError(t, PrepareControl(dir, os.Getgid()))
}

func TestPrepareControlErrors(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "supervise"), nil, 0o644))
	assert.Check(t, PrepareControl(dir, -1) != nil, "supervise is a file")

	dir = t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "supervise", "control"), 0o755))
	assert.Check(t, is.ErrorContains(GrantGroup(dir, os.Getgid()), "want p"), "control is a directory, not a fifo")

	m := New(t.TempDir())
	slot := render.GatewaySlot("x")
	slot.LogName = "../escape"
	assert.Check(t, is.ErrorContains(m.Install(slot), "invalid log name"))
}

func TestStatusStringWantDown(t *testing.T) {
	st := Status{Up: true, NormallyUp: true, Pid: 9, Seconds: 2}
	assert.Check(t, is.Equal(st.String(), "up (pid 9) 2 seconds, want down"))
	assert.Check(t, strings.HasPrefix(Status{ExitCode: -1}.String(), "down 0 seconds"))
}

func TestStatusRightAfterRegister(t *testing.T) {
	m, home := liveScan(t)
	front := fakeFront(t, home)
	for i := range 20 {
		name := fmt.Sprintf("gateway-r%d", i)
		assert.NilError(t, m.Register(testSlot(t, front, strings.TrimPrefix(name, "gateway-"))))
		// s6-svstat reads supervise/status: it must be there at once.
		_, err := os.Stat(filepath.Join(m.Dir(name), "supervise", "status"))
		assert.NilError(t, err, "a registered slot has a status at once")
		st, err := m.Status(name)
		assert.NilError(t, err)
		assert.Check(t, !st.Up && !st.WantUp, "%s: %s", name, st)
	}
}
