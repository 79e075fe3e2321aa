package watch

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
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
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

func TestDescribe(t *testing.T) {
	up := func(pid int) s6.Status { return s6.Status{Up: true, WantUp: true, Pid: pid, ExitCode: -1} }
	for _, tc := range []struct {
		name      string
		prev, cur s6.Status
		known     bool
		restarts  int // before
		want      []string
		after     int // restarts after
	}{
		{"first seen up", s6.Status{}, up(10), false, 0, []string{"gw started (pid 10)"}, 0},
		{"first seen down", s6.Status{}, s6.Status{ExitCode: -1}, false, 0, nil, 0},
		{"started", s6.Status{ExitCode: -1}, up(11), true, 0, []string{"gw started (pid 11)"}, 0},
		{"exited with code", up(10), s6.Status{WantUp: true, ExitCode: 3}, true, 0, []string{"gw exited with code 3"}, 0},
		{"killed by signal", up(10), s6.Status{WantUp: true, ExitCode: -1, Signal: "SIGKILL"}, true, 0, []string{"gw exited by signal SIGKILL"}, 0},
		{"exited, nothing known", up(10), s6.Status{WantUp: true, ExitCode: -1}, true, 0, []string{"gw exited"}, 0},
		{"restarted", s6.Status{WantUp: true, ExitCode: 3}, up(12), true, 1, []string{"gw restarted (pid 12, restart #2)"}, 2},
		{"died and came back between two looks", up(10), up(13), true, 0, []string{"gw exited; restarted (pid 13, restart #1)"}, 1},
		{"died with a code and came back between two looks", up(10), s6.Status{Up: true, WantUp: true, Pid: 14, ExitCode: 70}, true, 1, []string{"gw exited with code 70; restarted (pid 14, restart #2)"}, 2},
		{"gave up after exit 78", up(10), s6.Status{ExitCode: 78}, true, 0, []string{"gw exited with code 78", "gw gave up after exit 78 (fatal configuration): not restarting"}, 0},
		{"gave up after exit 78 before the first scan", s6.Status{}, s6.Status{ExitCode: 78, Seconds: 1}, false, 0, []string{"gw exited with code 78", "gw gave up after exit 78 (fatal configuration): not restarting"}, 0},
		{"gave up again after exit 78, start never seen", s6.Status{ExitCode: 78, Seconds: 9}, s6.Status{ExitCode: 78, Seconds: 1}, true, 0, []string{"gw exited with code 78", "gw gave up after exit 78 (fatal configuration): not restarting"}, 0},
		{"the same death re-read", s6.Status{ExitCode: 78, Seconds: 1}, s6.Status{ExitCode: 78, Seconds: 2}, true, 0, nil, 0},
		{"gave up after exit 78 seen down", s6.Status{WantUp: true, ExitCode: 1}, s6.Status{ExitCode: 78}, true, 0, []string{"gw exited with code 78", "gw gave up after exit 78 (fatal configuration): not restarting"}, 0},
		{"stopped", up(10), s6.Status{ExitCode: -1, Signal: "SIGTERM"}, true, 0, []string{"gw exited by signal SIGTERM", "gw stopped"}, 0},
		{"no change", up(10), up(10), true, 4, nil, 4},
		{"still down", s6.Status{ExitCode: 0}, s6.Status{ExitCode: 0}, true, 0, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.restarts
			got := Describe("gw", tc.prev, tc.cur, tc.known, &n)
			assert.Check(t, is.DeepEqual(got, tc.want))
			assert.Check(t, is.Equal(n, tc.after), "restart count")
		})
	}
}

// logged waits until out holds want.
func logged(out fmt.Stringer, want string) poll.Check {
	return func(poll.LogT) poll.Result {
		if strings.Contains(out.String(), want) {
			return poll.Success()
		}
		return poll.Continue("want %q in\n%s", want, out)
	}
}

// upPid waits until slot is up with a process other than not, and returns
// its pid.
func upPid(t *testing.T, m *s6.Manager, slot string, not int) int {
	t.Helper()
	var pid int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		st, err := m.Status(slot)
		if err == nil && st.Up && st.Pid > 0 && st.Pid != not {
			pid = st.Pid
			return poll.Success()
		}
		return poll.Continue("%s: not up with a new process: %v %v", slot, st, err)
	}, pollOpts...)
	return pid
}

func TestWatcherFollowsACrashingSlot(t *testing.T) { followsACrashingSlot(t, 0) }

// followsACrashingSlot: idle 0 polls every Interval; otherwise the watcher
// sleeps on inotify with a scan every idle.
func followsACrashingSlot(t *testing.T, idle time.Duration) {
	m, home := liveScan(t)
	u, err := user.Current()
	assert.NilError(t, err)
	slot := render.GatewaySlot("work")
	slot.Front, slot.Shell, slot.User, slot.Tool = standInGateway(t), "/bin/sh", u.Username, s6test.Tool(t)
	assert.NilError(t, m.Register(slot))

	out := &syncbuf.Buffer{}
	history := filepath.Join(t.TempDir(), "history.log")
	w := &Watcher{S6: m, Out: out, History: history, Interval: 20 * time.Millisecond, Idle: idle,
		Now: func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { w.Run(stop); close(done) }()
	defer func() { close(stop); <-done }()

	assert.NilError(t, m.Start("gateway-work"))
	first := upPid(t, m, "gateway-work", 0)
	poll.WaitOn(t, logged(out, fmt.Sprintf("hermes-watch: gateway-work started (pid %d)\n", first)), pollOpts...)

	// A crash: the supervisor restarts it and the watcher counts it.
	assert.NilError(t, syscall.Kill(first, syscall.SIGKILL))
	second := upPid(t, m, "gateway-work", first)
	poll.WaitOn(t, logged(out, fmt.Sprintf("(pid %d, restart #1)\n", second)), pollOpts...)

	// A fatal configuration: exit 78, and s6 gives up.
	assert.NilError(t, os.WriteFile(filepath.Join(home, "exit-work"), []byte("78"), 0o644))
	assert.NilError(t, syscall.Kill(second, syscall.SIGKILL))
	poll.WaitOn(t, logged(out, "hermes-watch: gateway-work gave up after exit 78 (fatal configuration): not restarting\n"), pollOpts...)
	assert.Check(t, is.Contains(out.String(), "hermes-watch: gateway-work exited with code 78\n"))

	// Started again once fixed (a start, not a restart), then stopped.
	assert.NilError(t, os.Remove(filepath.Join(home, "exit-work")))
	assert.NilError(t, m.Start("gateway-work"))
	again := upPid(t, m, "gateway-work", 0)
	poll.WaitOn(t, logged(out, fmt.Sprintf("hermes-watch: gateway-work started (pid %d)\n", again)), pollOpts...)
	assert.NilError(t, m.Stop("gateway-work", true))
	poll.WaitOn(t, logged(out, "hermes-watch: gateway-work stopped\n"), pollOpts...)
	assert.Check(t, is.Contains(out.String(), "hermes-watch: gateway-work exited by signal SIGTERM\n"))
	assert.Check(t, !strings.Contains(out.String(), "restart #3"), "two crashes, two restarts:\n%s", out)

	assert.NilError(t, m.Unregister("gateway-work"))
	poll.WaitOn(t, logged(out, "hermes-watch: gateway-work removed\n"), pollOpts...)

	// The history file has the same lines, stamped.
	b, err := os.ReadFile(history)
	assert.NilError(t, err)
	var want strings.Builder
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		if l != "" {
			want.WriteString("2030-01-02T03:04:05Z " + strings.TrimPrefix(l, "hermes-watch: "))
		}
	}
	assert.Check(t, is.Equal(string(b), want.String()))
}

func TestWatcherSeesAChangeWithinOneTimestampTick(t *testing.T) {
	// Two status writes can share one mtime (coarse file timestamps): the
	// watcher must still report the second.
	m, _ := liveScan(t)
	u, err := user.Current()
	assert.NilError(t, err)
	slot := render.GatewaySlot("tick")
	slot.Front, slot.Shell, slot.User, slot.Tool = standInGateway(t), "/bin/sh", u.Username, s6test.Tool(t)
	assert.NilError(t, m.Register(slot))
	assert.NilError(t, m.Start("gateway-tick"))
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if st, err := m.Status("gateway-tick"); err == nil && st.Up {
			return poll.Success()
		}
		return poll.Continue("gateway-tick not up")
	}, pollOpts...)

	out := &syncbuf.Buffer{}
	w := &Watcher{S6: m, Out: out}
	w.Scan()
	assert.Check(t, is.Contains(out.String(), "gateway-tick started"))
	status := filepath.Join(m.Dir("gateway-tick"), "supervise", "status")
	fi, err := os.Stat(status)
	assert.NilError(t, err)

	assert.NilError(t, m.Stop("gateway-tick", true))
	assert.NilError(t, os.Chtimes(status, fi.ModTime(), fi.ModTime()))
	w.Scan()
	assert.Check(t, is.Contains(out.String(), "gateway-tick stopped\n"))
}

func TestScanWithoutAScanDirectory(t *testing.T) {
	out := &syncbuf.Buffer{}
	w := &Watcher{S6: s6.New(filepath.Join(t.TempDir(), "missing")), Out: out}
	w.Scan()
	assert.Check(t, is.Equal(out.String(), ""))
}

func TestScanSkipsUnsupervisedSlots(t *testing.T) {
	scan := t.TempDir()
	m := s6.New(scan)
	// Not yet picked up: no supervise/status.
	assert.NilError(t, os.MkdirAll(filepath.Join(scan, "fresh"), 0o755))
	// A status file, but no supervisor to ask.
	assert.NilError(t, os.MkdirAll(filepath.Join(scan, "orphan", "supervise"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(scan, "orphan", "supervise", "status"), nil, 0o644))
	out := &syncbuf.Buffer{}
	w := &Watcher{S6: m, Out: out}
	w.Scan()
	assert.Check(t, is.Equal(out.String(), ""))
}

func TestHistoryIsRotated(t *testing.T) {
	history := filepath.Join(t.TempDir(), "history.log")
	full := bytes.Repeat([]byte("old line\n"), HistoryMax/9+1)
	assert.NilError(t, os.WriteFile(history, full, 0o644))
	out := &syncbuf.Buffer{}
	w := &Watcher{Out: out, History: history, Now: func() time.Time { return time.Unix(0, 0) }}
	w.emit("gateway-x started (pid 1)")

	old, err := os.ReadFile(history + ".1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(len(old), len(full)))
	b, err := os.ReadFile(history)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "1970-01-01T00:00:00Z gateway-x started (pid 1)\n"))
	assert.Check(t, is.Equal(out.String(), "hermes-watch: gateway-x started (pid 1)\n"))
}

func TestEmitWithoutHistory(t *testing.T) {
	out := &syncbuf.Buffer{}
	w := &Watcher{Out: out}
	w.emit("dashboard stopped")
	assert.Check(t, is.Equal(out.String(), "hermes-watch: dashboard stopped\n"))
}

func TestWatcherKeepsDownMarkersInStep(t *testing.T) { keepsDownMarkersInStep(t, 0) }

func keepsDownMarkersInStep(t *testing.T, idle time.Duration) {
	m, _ := liveScan(t)
	u, err := user.Current()
	assert.NilError(t, err)
	slot := render.GatewaySlot("work")
	slot.Front, slot.Shell, slot.User, slot.Tool = standInGateway(t), "/bin/sh", u.Username, s6test.Tool(t)
	assert.NilError(t, m.Register(slot))
	marker := filepath.Join(m.Dir("gateway-work"), "down")

	w := &Watcher{S6: m, Out: &syncbuf.Buffer{}, Interval: 20 * time.Millisecond, Idle: idle, Markers: true}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { w.Run(stop); close(done) }()
	defer func() { close(stop); <-done }()

	markerIs := func(present bool) poll.Check {
		return func(poll.LogT) poll.Result {
			_, err := os.Stat(marker)
			if (err == nil) == present {
				return poll.Success()
			}
			return poll.Continue("down marker present: %v, want %v", err == nil, present)
		}
	}
	// Started through the control fifo alone (as hermes does): the
	// watcher removes the marker, so a restarted supervisor starts it too.
	assert.NilError(t, m.Start("gateway-work"))
	poll.WaitOn(t, markerIs(false), pollOpts...)
	assert.NilError(t, m.Stop("gateway-work", true))
	poll.WaitOn(t, markerIs(true), pollOpts...)
}
