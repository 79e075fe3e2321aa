package reconcile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

var bootTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newReconciler returns a reconciler on m and home with the container's CMD
// and environment; its log is returned alongside.
func newReconciler(m *s6.Manager, home string, cmd []string, env map[string]string) (*Reconciler, *bytes.Buffer) {
	var log bytes.Buffer
	return &Reconciler{
		Home:   home,
		S6:     m,
		Getenv: func(k string) string { return env[k] },
		CMD:    cmd,
		UID:    os.Getuid(),
		GID:    os.Getgid(),
		Log:    &log,
		Alive:  func(pid int) bool { return pid == os.Getpid() },
		Now:    func() time.Time { return bootTime },
	}, &log
}

// addProfile creates profile name with a state file holding state ("" for
// none) and returns its directory.
func addProfile(t *testing.T, home, name, state string) string {
	t.Helper()
	dir := profile.Dir(home, name)
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	if state != "" {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, profile.StateFile), []byte(state), 0o644))
	}
	return dir
}

func byProfile(outcomes []Outcome) map[string]Outcome {
	out := map[string]Outcome{}
	for _, o := range outcomes {
		out[o.Profile] = o
	}
	return out
}

// slotState reports whether s6 was told to keep slot up, and whether the
// slot is marked down for the next supervisor start.
func slotState(t *testing.T, m *s6.Manager, slot string) (wantUp, downFile bool) {
	t.Helper()
	st, err := m.Status(slot)
	assert.NilError(t, err, slot)
	_, err = os.Stat(filepath.Join(m.Dir(slot), "down"))
	return st.WantUp, err == nil
}

func logLines(b *bytes.Buffer) []string {
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func TestReconcileRestoresEveryProfile(t *testing.T) {
	m, home := liveScan(t)
	const running, stopped = `{"desired_state":"running"}`, `{"desired_state":"stopped"}`
	addProfile(t, home, "default", running)
	work := addProfile(t, home, "work", running)
	idle := addProfile(t, home, "idle", stopped)
	addProfile(t, home, "fresh", "")
	addProfile(t, home, "broken", "{not json")
	weird := addProfile(t, home, "weird", "")
	assert.NilError(t, os.Mkdir(filepath.Join(weird, profile.StateFile), 0o755))
	addProfile(t, home, "Bad", running)
	addProfile(t, home, "oops", running)
	// Something that is not a slot sits where gateway-oops would go.
	assert.NilError(t, os.WriteFile(filepath.Join(m.ScanDir, "gateway-oops"), nil, 0o644))
	// A stale pid file and one of a live gateway.
	assert.NilError(t, os.WriteFile(filepath.Join(work, profile.PidFile), []byte("999999999\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(idle, profile.PidFile), []byte(fmt.Sprintln(os.Getpid())), 0o644))

	r, log := newReconciler(m, home, nil, nil)
	outcomes := r.Run()

	got := byProfile(outcomes)
	assert.Check(t, is.Len(outcomes, 7), "every valid profile, once: %v", outcomes)
	for _, tc := range []struct {
		name, action, reason string
	}{
		{"default", "started", "desired state running"},
		{"work", "started", "desired state running"},
		{"idle", "down", "desired state stopped"},
		{"fresh", "down", "no desired state recorded"},
		{"broken", "down", "corrupt state file " + filepath.Join(home, "profiles", "broken", profile.StateFile)},
		{"weird", "down", "is a directory"},
		{"oops", "error", "slot already registered: gateway-oops"},
	} {
		o := got[tc.name]
		assert.Check(t, is.Equal(o.Slot, "gateway-"+tc.name))
		assert.Check(t, is.Equal(o.Action, tc.action), tc.name)
		assert.Check(t, is.Contains(o.Reason, tc.reason), tc.name)
	}
	_, listed := got["Bad"]
	assert.Check(t, !listed, "a directory with an invalid name is not a profile")

	for _, slot := range []string{"gateway-default", "gateway-work"} {
		wantUp, _ := slotState(t, m, slot)
		assert.Check(t, wantUp, "%s must be started", slot)
	}
	for _, slot := range []string{"gateway-idle", "gateway-fresh", "gateway-broken", "gateway-weird", "dashboard"} {
		wantUp, down := slotState(t, m, slot)
		assert.Check(t, !wantUp && down, "%s must be down", slot)
	}

	_, err := os.Stat(filepath.Join(work, profile.PidFile))
	assert.Check(t, errors.Is(err, os.ErrNotExist), "stale pid file removed")
	_, err = os.Stat(filepath.Join(idle, profile.PidFile))
	assert.Check(t, err, "the pid file of a live gateway is kept")

	// One log line per profile saying what happened and why.
	lines := logLines(log)
	for _, o := range outcomes {
		want := "hermes-reconcile: " + o.String()
		n := 0
		for _, l := range lines {
			if l == want {
				n++
			}
		}
		assert.Check(t, is.Equal(n, 1), "want one %q in\n%s", want, log)
	}
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: ignoring profiles/Bad: not a valid profile name\n"))
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: work: removed stale pid file "+filepath.Join(work, profile.PidFile)+"\n"))
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: fresh gateway-fresh: down (no desired state recorded)\n"))

	// The boot log gets one stamped line per profile.
	b, err := os.ReadFile(filepath.Join(home, BootLog))
	assert.NilError(t, err)
	var want strings.Builder
	for _, o := range outcomes {
		fmt.Fprintf(&want, "2030-01-02T03:04:05Z %s\n", o)
	}
	assert.Check(t, is.Equal(string(b), want.String()))
}

func TestReconcileAgainRendersInPlaceAndRotatesTheBootLog(t *testing.T) {
	m, home := liveScan(t)
	addProfile(t, home, "default", `{"desired_state":"running"}`)
	addProfile(t, home, "work", `{"desired_state":"stopped"}`)
	r, _ := newReconciler(m, home, nil, nil)
	first := r.Run()

	// A full boot log is rotated before the next boot writes to it.
	bootLog := filepath.Join(home, BootLog)
	full := bytes.Repeat([]byte("x"), BootLogMax)
	assert.NilError(t, os.WriteFile(bootLog, full, 0o644))
	// Someone edited a rendered script: the next boot renders it again.
	run := filepath.Join(m.Dir("gateway-work"), "run")
	rendered, err := os.ReadFile(run)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(run, []byte("#!/bin/sh\nexit 1\n"), 0o755))

	second := r.Run()
	assert.Check(t, is.DeepEqual(second, first))
	again, err := os.ReadFile(run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(again), string(rendered)))

	old, err := os.ReadFile(bootLog + ".1")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(len(old), BootLogMax), "the full log moved to .1")
	b, err := os.ReadFile(bootLog)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(strings.Count(string(b), "\n"), 2), "one line per profile:\n%s", b)

	wantUp, _ := slotState(t, m, "gateway-default")
	assert.Check(t, wantUp)
	wantUp, down := slotState(t, m, "gateway-work")
	assert.Check(t, !wantUp && down)
}

func TestReconcileLegacyGatewayRunIsMigrated(t *testing.T) {
	m, home := liveScan(t)
	addProfile(t, home, "work", "")
	r, _ := newReconciler(m, home, []string{"/usr/local/bin/hermes", "gateway", "run"}, nil)
	got := byProfile(r.Run())

	assert.Check(t, is.Equal(got["default"].Action, "started"))
	assert.Check(t, is.Equal(got["default"].Reason, "legacy `gateway run` container without state: migrated to running"))
	d, err := profile.ReadState(home, profile.Default)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(d, profile.Running), "the migration is recorded")
	wantUp, _ := slotState(t, m, "gateway-default")
	assert.Check(t, wantUp)

	assert.Check(t, is.Equal(got["work"].Action, "down"), "only the default profile was the legacy gateway")
	assert.Check(t, is.Equal(got["work"].Reason, "no desired state recorded"))
}

func TestReconcileLeavesTheForegroundGatewayAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cmd   []string
		env   map[string]string
		owner string
	}{
		{"flag", []string{"hermes", "gateway", "run", "--no-supervise"}, nil, "default"},
		{"variable", []string{"gateway", "run"}, map[string]string{"HERMES_GATEWAY_NO_SUPERVISE": "1"}, "default"},
		{"profile flag", []string{"/usr/local/bin/hermes", "-p", "work", "gateway", "run", "--replace", "--no-supervise"}, nil, "work"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, home := liveScan(t)
			addProfile(t, home, "default", `{"desired_state":"running"}`)
			addProfile(t, home, "work", `{"desired_state":"running"}`)
			r, _ := newReconciler(m, home, tc.cmd, tc.env)
			got := byProfile(r.Run())
			for _, name := range []string{"default", "work"} {
				wantUp, down := slotState(t, m, "gateway-"+name)
				if name == tc.owner {
					assert.Check(t, is.Equal(got[name].Action, "skipped"))
					assert.Check(t, is.Equal(got[name].Reason, "the CMD runs this gateway in the foreground (--no-supervise)"))
					assert.Check(t, !wantUp && down, "the foreground gateway owns %s: its slot is never started", name)
				} else {
					assert.Check(t, is.Equal(got[name].Action, "started"))
					assert.Check(t, wantUp)
				}
			}
		})
	}
}

func TestReconcileDashboardContainerStartsNoGateway(t *testing.T) {
	m, home := liveScan(t)
	addProfile(t, home, "default", `{"desired_state":"running"}`)
	addProfile(t, home, "work", `{"desired_state":"running"}`)
	r, log := newReconciler(m, home, []string{"hermes", "dashboard", "--port", "9119"}, map[string]string{"HERMES_DASHBOARD": "yes"})
	for _, o := range r.Run() {
		assert.Check(t, is.Equal(o.Action, "skipped"), o.Profile)
		assert.Check(t, is.Equal(o.Reason, "the CMD is the dashboard: no gateway is started in this container"))
		wantUp, down := slotState(t, m, o.Slot)
		assert.Check(t, !wantUp && down, o.Slot)
	}
	wantUp, _ := slotState(t, m, "dashboard")
	assert.Check(t, wantUp, "HERMES_DASHBOARD=yes starts the dashboard")
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: dashboard: started (HERMES_DASHBOARD=yes)\n"))
}

func TestReconcileDashboardOnlyWhenTruthy(t *testing.T) {
	for _, v := range []string{"", "0", "no", "ture"} {
		m, home := liveScan(t)
		r, _ := newReconciler(m, home, nil, map[string]string{"HERMES_DASHBOARD": v})
		r.Run()
		wantUp, down := slotState(t, m, "dashboard")
		assert.Check(t, !wantUp && down, "HERMES_DASHBOARD=%q: the dashboard stays down", v)
	}
}

func TestReconcileWithoutS6LogsAndCarriesOn(t *testing.T) {
	s6test.Need(t)
	// A scan directory nobody supervises: every s6 step fails, is logged,
	// and the boot log is still written.
	scan := t.TempDir()
	m := s6.New(scan)
	m.Timeout = 50 * time.Millisecond
	home := t.TempDir()
	addProfile(t, home, "default", `{"desired_state":"running"}`)
	assert.NilError(t, os.WriteFile(filepath.Join(scan, "dashboard"), nil, 0o644))
	r, log := newReconciler(m, home, nil, map[string]string{"HERMES_DASHBOARD": "1"})
	got := byProfile(r.Run())

	assert.Check(t, is.Equal(got["default"].Action, "error"))
	assert.Check(t, is.Contains(got["default"].Reason, "register gateway-default: s6-supervise did not start within 50ms"))
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: dashboard: slot already registered: dashboard\n"))
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: rescan: s6-svscanctl -an "+scan))
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: default gateway-default: error (register gateway-default: s6-supervise did not start within 50ms)\n"))
	b, err := os.ReadFile(filepath.Join(home, BootLog))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), "default gateway-default: error (register gateway-default: "))
}

// An existing slot nobody supervises: the control command fails and is reported.
func TestReconcileStartFailureOnExistingSlotIsAnError(t *testing.T) {
	scan := t.TempDir()
	m := s6.New(scan)
	m.Timeout = 50 * time.Millisecond
	home := t.TempDir()
	addProfile(t, home, "default", `{"desired_state":"running"}`)
	assert.NilError(t, m.Install(render.GatewaySlot("default")))
	r, _ := newReconciler(m, home, nil, nil)
	got := byProfile(r.Run())
	assert.Check(t, is.Equal(got["default"].Action, "error"))
	assert.Check(t, is.Contains(got["default"].Reason, "start: s6-svc -u "))
}

func TestReconcileMarkDownFailureIsAnError(t *testing.T) {
	s6test.Need(t)
	scan := t.TempDir()
	m := s6.New(scan)
	m.Timeout = 50 * time.Millisecond
	home := t.TempDir()
	assert.NilError(t, m.Install(render.GatewaySlot("default")))
	r, _ := newReconciler(m, home, nil, nil)
	got := byProfile(r.Run())
	assert.Check(t, is.Equal(got["default"].Action, "error"))
	assert.Check(t, is.Contains(got["default"].Reason, "marking down: s6-svc -d "))
}

func TestBootLogProblemsAreLogged(t *testing.T) {
	home := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(home, "logs"), nil, 0o644))
	r, log := newReconciler(nil, home, nil, nil)
	r.bootLog([]Outcome{{"default", "gateway-default", "down", "why"}})
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: boot log: "))

	home = t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, BootLog), 0o755))
	r, log = newReconciler(nil, home, nil, nil)
	r.bootLog(nil)
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: boot log: "))
}

func TestListFailureIsLogged(t *testing.T) {
	home := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles"), nil, 0o644))
	scan := t.TempDir()
	m := s6.New(scan)
	m.Timeout = 50 * time.Millisecond
	r, log := newReconciler(m, home, nil, nil)
	got := byProfile(r.Run())
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: cannot list profiles under "+home))
	_, ok := got["default"]
	assert.Check(t, ok, "the default profile is still reconciled")
}

func TestCMDOwnership(t *testing.T) {
	for _, tc := range []struct {
		cmd        []string
		env        string
		owner      string
		noGateways bool
	}{
		{nil, "", "", false},
		{[]string{"hermes"}, "", "", false},
		{[]string{"hermes", "gateway", "run"}, "", "", false},
		{[]string{"hermes", "gateway", "run"}, "0", "", false},
		{[]string{"hermes", "gateway", "run"}, "true", "default", false},
		{[]string{"gateway", "run", "--no-supervise"}, "", "default", false},
		{[]string{"gateway", "run", "--", "--no-supervise"}, "", "", false},
		{[]string{"-p", "a", "--profile", "b", "gateway", "run", "--no-supervise"}, "", "b", false},
		{[]string{"--profile=c", "gateway", "run", "--no-supervise"}, "", "c", false},
		// The front's rule (cmdline.Parse): the last profile option wins.
		{[]string{"--profile=a", "-p", "b", "gateway", "run", "--no-supervise"}, "", "b", false},
		// A CMD the front refuses owns nothing.
		{[]string{"-p", "../x", "gateway", "run", "--no-supervise"}, "", "", false},
		{[]string{"gateway", "start"}, "1", "", false},
		{[]string{"dashboard"}, "", "", true},
		{[]string{"/usr/local/bin/hermes", "-p", "work", "dashboard"}, "", "", true},
		{[]string{"bash"}, "1", "", false},
	} {
		r := &Reconciler{Getenv: func(string) string { return tc.env }, CMD: tc.cmd}
		owner, none := r.cmdOwnership()
		assert.Check(t, is.Equal(owner, tc.owner), "%q %s", tc.cmd, tc.env)
		assert.Check(t, is.Equal(none, tc.noGateways), "%q %s", tc.cmd, tc.env)
	}
}

func TestLegacyMigrationThatCannotBeRecordedStillStarts(t *testing.T) {
	home := filepath.Join(t.TempDir(), "missing")
	r, _ := newReconciler(nil, home, []string{"gateway", "run"}, nil)
	action, reason := r.decide("default", "", false)
	assert.Check(t, is.Equal(action, "started"))
	assert.Check(t, is.Contains(reason, "legacy `gateway run` container without state; could not record it: "))
}

func TestFindCMD(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, cmdline string) {
		assert.NilError(t, os.MkdirAll(filepath.Join(proc, pid), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(cmdline), 0o644))
	}
	write("1", "s6-svscan\x00/run/service\x00")
	write("7", "")
	write("12", "/bin/sh\x00rc.init\x00top\x00")
	assert.NilError(t, os.MkdirAll(filepath.Join(proc, "self"), 0o755))
	assert.Check(t, is.Len(FindCMD(proc), 0), "no stage 2 process")

	write("40", "/bin/sh\x00-e\x00/run/s6/basedir/scripts/rc.init\x00top\x00hermes\x00gateway\x00run\x00--replace\x00")
	assert.Check(t, is.DeepEqual(FindCMD(proc), []string{"hermes", "gateway", "run", "--replace"}))

	assert.Check(t, is.Len(FindCMD(filepath.Join(proc, "missing")), 0))
}

func TestFindCMDWithoutCMD(t *testing.T) {
	proc := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(proc, "9"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(proc, "9", "cmdline"), []byte("/run/s6/basedir/scripts/rc.init\x00top\x00"), 0o644))
	assert.Check(t, is.DeepEqual(FindCMD(proc), []string{}))
}

func TestGatewayAlive(t *testing.T) {
	gw := exec.Command("/bin/sh", "-c", "while :; do sleep 1; done", "gateway-stand-in")
	assert.NilError(t, gw.Start())
	other := exec.Command("sleep", "100")
	assert.NilError(t, other.Start())
	defer other.Process.Kill()

	assert.Check(t, GatewayAlive(gw.Process.Pid), "a running gateway")
	assert.Check(t, !GatewayAlive(other.Process.Pid), "a process that is not a gateway")
	assert.NilError(t, gw.Process.Kill())
	gw.Wait()
	assert.Check(t, !GatewayAlive(gw.Process.Pid), "a gateway that is gone")
}

func TestRemoveStalePidWithoutLivenessCheck(t *testing.T) {
	home := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(home, profile.PidFile), []byte("garbage"), 0o644))
	r, log := newReconciler(nil, home, nil, nil)
	r.removeStalePid("default")
	_, err := os.Stat(filepath.Join(home, profile.PidFile))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	assert.Check(t, is.Contains(log.String(), "default: removed stale pid file"))
}

func TestReconcileRefusesASystemDirectoryAsHome(t *testing.T) {
	scan := t.TempDir()
	r, log := newReconciler(s6.New(scan), "/etc", []string{"gateway", "run"}, nil)
	assert.Check(t, is.Len(r.Run(), 0))
	assert.Check(t, is.Contains(log.String(), `HERMES_HOME="/etc" is /etc, a system directory`))
	assert.Check(t, is.Contains(log.String(), "no slot is set up"))
	entries, err := os.ReadDir(scan)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "nothing installed")
	_, err = os.Stat("/etc/" + profile.StateFile)
	assert.Check(t, os.IsNotExist(err), "nothing written in /etc")
}

func TestBootLogNeverWritesThroughASymlink(t *testing.T) {
	// A boot log planted as a symlink to a script root runs at boot must
	// not be appended to, nor given to hermes.
	home := t.TempDir()
	script := filepath.Join(t.TempDir(), "10-setup")
	assert.NilError(t, os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755))
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "logs"), 0o755))
	assert.NilError(t, os.Symlink(script, filepath.Join(home, BootLog)))
	r, log := newReconciler(s6.New(t.TempDir()), home, nil, nil)
	r.UID, r.GID = 4242, 4242
	r.bootLog([]Outcome{{Profile: "default", Slot: "gateway-default", Action: "down", Reason: "x"}})
	b, _ := os.ReadFile(script)
	assert.Check(t, is.Equal(string(b), "#!/bin/sh\n"))
	st, err := os.Stat(script)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Uid), os.Getuid()), "not chowned")
	assert.Check(t, is.Contains(log.String(), "boot log: "))

	// A profile directory that is a symlink out of home: its stale pid
	// file is not removed.
	outside := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(outside, "gateway.pid"), []byte("1\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "profiles"), 0o755))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "profiles", "evil")))
	r.removeStalePid("evil")
	_, err = os.Stat(filepath.Join(outside, "gateway.pid"))
	assert.NilError(t, err, "left alone")
}
