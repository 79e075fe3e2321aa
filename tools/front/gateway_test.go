package front

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

func desired(t *testing.T, home, name string) profile.Desired {
	t.Helper()
	d, err := profile.ReadState(home, name)
	assert.NilError(t, err)
	return d
}

func TestGatewayRunRedirectsIntoSupervision(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)

	res := h.run("gateway", "run")

	assert.Check(t, is.Equal(desired(t, home, "default"), profile.Running), "desired state recorded")
	poll.WaitOn(t, slotIs(m, "gateway-default", isUp, "up"), pollOpts...)
	assert.Check(t, is.Equal(h.stderr.String(), Breadcrumb("gateway-default", profile.Running)))
	assert.Check(t, is.Contains(h.stderr.String(), "s6 supervision"))
	assert.Check(t, is.Contains(h.stderr.String(), "--no-supervise"))
	assert.Check(t, is.Contains(h.stderr.String(), "HERMES_GATEWAY_NO_SUPERVISE"))
	assert.Check(t, res.replaced, "the front must become `sleep infinity`")
	assert.Assert(t, res.exec != nil)
	assert.Check(t, is.Equal(filepath.Base(res.exec.Path), "sleep"))
	assert.Check(t, is.DeepEqual(res.exec.Argv, []string{"sleep", "infinity"}))
	assert.Check(t, is.Equal(h.blocks, 0))

	// The supervised gateway ran through the front with the recursion guard.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		b, _ := os.ReadFile(filepath.Join(home, "logs", "gateways", "default", "current"))
		if strings.Contains(string(b), "stand-in gateway gateway run --replace") {
			return poll.Success()
		}
		return poll.Continue("gateway log has %q", b)
	}, pollOpts...)
}

func TestGatewayRunRedirectOfAProfile(t *testing.T) {
	m, home := liveScan(t)
	mkProfile(t, home, "work")
	h := newHermes(t, m, home)
	res := h.run("-p", "work", "gateway", "run", "--replace")
	assert.Check(t, res.replaced)
	poll.WaitOn(t, slotIs(m, "gateway-work", isUp, "up"), pollOpts...)
	assert.Check(t, is.Equal(desired(t, home, "work"), profile.Running))
	assert.Check(t, !m.Exists("gateway-default"), "only the named profile is touched")
}

func TestGatewayRunBlocksWhenSleepCannotBeExeced(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	h.execErr = errors.New("permission denied")
	res := h.run("gateway", "run")
	assert.Check(t, !res.replaced)
	assert.Check(t, is.Equal(h.blocks, 1), "waits for a signal instead")
	assert.Check(t, is.Equal(res.code, 128+15), "exit code is 128+signal")
	assert.Check(t, is.Contains(h.stderr.String(), "(permission denied); waiting for a signal instead"))
	poll.WaitOn(t, slotIs(m, "gateway-default", isUp, "up"), pollOpts...)
}

func TestGatewayRunHonoursAStoppedDesiredState(t *testing.T) {
	m, home := liveScan(t)
	assert.NilError(t, profile.WriteState(home, profile.Default, profile.Stopped, -1, -1))
	h := newHermes(t, m, home)
	res := h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Equal(h.stderr.String(), Breadcrumb("gateway-default", profile.Stopped)))
	assert.Check(t, is.Contains(h.stderr.String(), "stays stopped"))
	assert.Check(t, is.Equal(desired(t, home, "default"), profile.Stopped))
	st, err := m.Status("gateway-default")
	assert.NilError(t, err)
	assert.Check(t, isDown(st), "registered but left down: %s", st)
}

func TestGatewayRunForegroundUnderS6(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", nil, []string{"-p", "default", "gateway", "run", "--no-supervise"}},
		{"variable", map[string]string{NoSuperviseEnv: "TRUE"}, []string{"gateway", "run"}},
		{"supervised child", map[string]string{"HERMES_S6_SUPERVISED_CHILD": "1"}, []string{"gateway", "run", "--replace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				h.env[k] = v
				defer delete(h.env, k)
			}
			res := h.run(tc.args...)
			assert.Check(t, res.replaced)
			assert.Assert(t, res.exec != nil)
			want := append([]string{agentBin}, tc.args...)
			assert.Check(t, is.DeepEqual(res.exec.Argv, want), "the agent gets the command line as given (--no-supervise too)")
			assert.Check(t, is.Contains(res.exec.Env, "HOME="+home), "the agent's HOME is HERMES_HOME")
			assert.Check(t, is.Equal(h.stderr.String(), ""))
		})
	}
	slots, err := m.Slots()
	assert.NilError(t, err)
	assert.Check(t, is.Len(slots, 0), "the foreground never registers a slot")
	_, err = profile.ReadState(home, profile.Default)
	assert.Check(t, errors.Is(err, profile.ErrNoState), "nor records a desired state")
}

func TestUnknownGateway(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	before := tree(t, m.ScanDir, home)
	for _, args := range [][]string{
		{"-p", "x", "gateway", "run"},
		{"-p", "x", "gateway", "start"},
		{"-p", "x", "gateway", "stop"},
		{"-p", "x", "gateway", "restart"},
		{"-p", "x", "gateway", "status"},
	} {
		res := h.run(args...)
		assert.Check(t, is.Equal(res.code, 1), "%q", args)
		assert.Check(t, is.Equal(h.stderr.String(), "hermes: no such gateway 'x': create it with `hermes profile create x`\n"), "%q", args)
	}
	assert.Check(t, is.DeepEqual(tree(t, m.ScanDir, home), before))
}

func TestGatewayStartStopRestartStatus(t *testing.T) {
	m, home := liveScan(t)
	mkProfile(t, home, "work")
	h := newHermes(t, m, home)
	h.history = func(slot string, n int) []string {
		return []string{fmt.Sprintf("recent %s %d", slot, n)}
	}

	res := h.run("-p", "work", "gateway", "status")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Regexp(`^gateway-work: down .*; desired: not recorded\n  recent gateway-work 5\n$`, h.stdout.String()))

	res = h.run("-p", "work", "gateway", "start")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "gateway-work: started\n"))
	assert.Check(t, is.Equal(desired(t, home, "work"), profile.Running))
	poll.WaitOn(t, slotIs(m, "gateway-work", isUp, "up"), pollOpts...)
	first, _ := m.Status("gateway-work")

	res = h.run("-p", "work", "gateway", "status")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Regexp(fmt.Sprintf(`^gateway-work: up \(pid %d\) \d+ seconds; desired: running\n`, first.Pid), h.stdout.String()))

	res = h.run("-p", "work", "gateway", "restart")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "gateway-work: restarted\n"))
	poll.WaitOn(t, slotIs(m, "gateway-work", func(s s6.Status) bool { return isUp(s) && s.Pid != first.Pid }, "up with a new pid"), pollOpts...)

	res = h.run("-p", "work", "gateway", "stop")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "gateway-work: stopped\n"))
	assert.Check(t, is.Equal(desired(t, home, "work"), profile.Stopped))
	st, err := m.Status("gateway-work")
	assert.NilError(t, err)
	assert.Check(t, isDown(st), "stop waits until it is down: %s", st)

	// A stopped gateway is started again by restart.
	res = h.run("-p", "work", "gateway", "restart")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(desired(t, home, "work"), profile.Running))
	poll.WaitOn(t, slotIs(m, "gateway-work", isUp, "up"), pollOpts...)

	// An unreadable desired state says so.
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles", "work", profile.StateFile), []byte("{"), 0o644))
	res = h.run("-p", "work", "gateway", "status")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Contains(h.stdout.String(), "; desired: unreadable\n"))
}

func TestGatewayAll(t *testing.T) {
	m, home := liveScan(t)
	for _, p := range []string{"a", "b", "c"} {
		mkProfile(t, home, p)
	}
	h := newHermes(t, m, home)
	for _, p := range []string{"a", "b"} {
		assert.Check(t, is.Equal(h.run("-p", p, "gateway", "start").code, 0))
		poll.WaitOn(t, slotIs(m, "gateway-"+p, isUp, "up"), pollOpts...)
	}
	assert.Check(t, is.Equal(h.run("-p", "c", "gateway", "status").code, 0), "registers c, down")
	assert.NilError(t, m.Register(h.template("x")), "a slot whose profile is gone")
	a, _ := m.Status("gateway-a")

	res := h.run("gateway", "status", "--all")
	assert.Check(t, is.Equal(res.code, 0))
	lines := strings.Split(strings.TrimSpace(h.stdout.String()), "\n")
	assert.Assert(t, is.Len(lines, 4), h.stdout.String())
	assert.Check(t, is.Regexp(`^gateway-a: up .*; desired: running$`, lines[0]))
	assert.Check(t, is.Regexp(`^gateway-b: up .*; desired: running$`, lines[1]))
	assert.Check(t, is.Regexp(`^gateway-c: down .*; desired: not recorded$`, lines[2]))
	assert.Check(t, is.Regexp(`^gateway-x: down .*; desired: not recorded$`, lines[3]))

	res = h.run("gateway", "restart", "--all")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Contains(h.stdout.String(), "gateway-a: restarted\n"))
	assert.Check(t, is.Contains(h.stdout.String(), "gateway-b: restarted\n"))
	assert.Check(t, is.Contains(h.stdout.String(), "gateway-c: not running, left alone\n"))
	poll.WaitOn(t, slotIs(m, "gateway-a", func(s s6.Status) bool { return isUp(s) && s.Pid != a.Pid }, "restarted"), pollOpts...)
	st, _ := m.Status("gateway-c")
	assert.Check(t, isDown(st), "restart --all never starts what was stopped: %s", st)

	// The profile of gateway-x is gone: its state cannot be recorded, the
	// others are still stopped and the first error gives the exit code.
	res = h.run("gateway", "stop", "--all")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: recording desired state"))
	for _, p := range []string{"a", "b", "c"} {
		assert.Check(t, is.Contains(h.stdout.String(), "gateway-"+p+": stopped\n"))
		assert.Check(t, is.Equal(desired(t, home, p), profile.Stopped))
		st, _ := m.Status("gateway-" + p)
		assert.Check(t, isDown(st), "gateway-%s: %s", p, st)
	}

	res = h.run("gateway", "start", "--all")
	assert.Check(t, is.Equal(res.code, 2))
	st, _ = m.Status("gateway-a")
	assert.Check(t, isDown(st), "start --all is refused and starts nothing")
}

func TestS6FailureGivesTheS6ExitCode(t *testing.T) {
	s6test.Need(t)
	// A slot on disk without s6-svscan: s6-svc cannot reach a supervisor.
	m := s6.New(t.TempDir())
	home := t.TempDir()
	h := newHermes(t, nil, home)
	h.superviseWith(t, m)
	assert.NilError(t, m.Install(slotTemplate(t)("default")))

	res := h.run("gateway", "start")
	assert.Check(t, res.code > 1, "exit code %d", res.code)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: starting gateway-default: s6-svc -u "))
	assert.Check(t, is.Contains(h.stderr.String(), fmt.Sprintf("failed with exit code %d", res.code)))

	res = h.run("gateway", "status")
	assert.Check(t, res.code != 0)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: status of gateway-default: s6-svstat "))
	assert.Check(t, is.Contains(h.stderr.String(), fmt.Sprintf("failed with exit code %d", res.code)))

	for _, verb := range []string{"stop", "restart"} {
		res = h.run("gateway", verb)
		assert.Check(t, res.code != 0, verb)
		assert.Check(t, is.Contains(h.stderr.String(), fmt.Sprintf("failed with exit code %d", res.code)), verb)
	}

	res = h.run("gateway", "run")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: starting gateway-default: s6-svc -u "))
	assert.Check(t, !res.replaced, "no sleep when the gateway could not be started")
}

func TestRegistrationFailure(t *testing.T) {
	s6test.Need(t)
	// No s6-svscan on the scan directory: registering cannot complete.
	m := s6.New(t.TempDir())
	home := t.TempDir()
	mkProfile(t, home, "work")
	h := newHermes(t, nil, home)
	h.superviseWith(t, m)
	h.agent = fakeAgent(home)

	res := h.run("-p", "work", "gateway", "start")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: registering gateway-work: "))
	assert.Check(t, !m.Exists("gateway-work"), "nothing left behind")

	res = h.run("profile", "create", "new")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: profile new created, but registering its slot failed: "))
}

func TestHealthcheck(t *testing.T) {
	m, home := liveScan(t)
	mkProfile(t, home, "work")
	mkProfile(t, home, "idle")
	h := newHermes(t, m, home)
	var asked []string
	h.health = func(name string) error { asked = append(asked, name); return nil }

	assert.Check(t, is.Equal(h.run("-p", "work", "gateway", "start").code, 0))
	assert.Check(t, is.Equal(h.run("-p", "idle", "gateway", "stop").code, 0))
	poll.WaitOn(t, slotIs(m, "gateway-work", isUp, "up"), pollOpts...)

	res := h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "healthy\n"))
	assert.Check(t, is.DeepEqual(asked, []string{"work"}), "only gateways that should run are asked")

	h.health = func(string) error { return errors.New("/health on port 8642 answered 503") }
	res = h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: unhealthy: gateway-work should be running (slot up) but /health on port 8642 answered 503\n"))

	// Desired running, but down and not answering.
	assert.NilError(t, m.Stop("gateway-work", true))
	h.health = func(string) error { return errors.New("connection refused") }
	res = h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: unhealthy: gateway-work should be running (slot down) but connection refused\n"))

	// A foreground (--no-supervise) gateway answers for its profile: healthy
	// although its slot is down.
	h.health = func(string) error { return nil }
	h.cmd = []string{"gateway", "run", "--no-supervise"}
	assert.Check(t, is.Equal(h.run("healthcheck").code, 0))

	// A dashboard container runs no gateway: nothing to check.
	h.health = func(string) error { return errors.New("not here") }
	h.cmd = []string{"dashboard", "--host", "0.0.0.0"}
	res = h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Contains(h.stdout.String(), "dashboard container"))
	h.cmd = nil

	gone := filepath.Join(t.TempDir(), "gone")
	h.superviseWith(t, s6.New(gone))
	res = h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: unhealthy: open "+gone))
}

func TestProfileCreateListDeleteUnderS6(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	slotAtDelete := true
	agent := fakeAgent(home)
	h.agent = func(argv []string) (int, error) {
		if argv[2] == "delete" {
			slotAtDelete = m.Exists("gateway-" + argv[3])
		}
		return agent(argv)
	}

	res := h.run("profile", "create", "work")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "created profile work (slot gateway-work, down): start it with `hermes -p work gateway start`\n"))
	assert.Check(t, is.DeepEqual(h.runs[0].Argv, []string{agentBin, "profile", "create", "work"}))
	assert.Check(t, profile.Exists(home, "work"))
	st, err := m.Status("gateway-work")
	assert.NilError(t, err, "the slot is registered")
	assert.Check(t, isDown(st) && !st.NormallyUp, "and down: %s", st)

	res = h.run("profile", "create", "work")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: profile 'work' already exists\n"))
	assert.Check(t, is.Len(h.runs, 1), "the agent is not asked twice")

	mkProfile(t, home, "zeta") // a profile made behind the front's back
	assert.Check(t, is.Equal(h.run("-p", "work", "gateway", "start").code, 0))
	poll.WaitOn(t, slotIs(m, "gateway-work", isUp, "up"), pollOpts...)
	res = h.run("profile", "list")
	assert.Check(t, is.Equal(res.code, 0))
	lines := strings.Split(strings.TrimSpace(h.stdout.String()), "\n")
	assert.Assert(t, is.Len(lines, 3), h.stdout.String())
	assert.Check(t, is.Equal(lines[0], "default\tgateway-default\tnot registered"))
	assert.Check(t, is.Regexp(`^work\tgateway-work\tup \(pid \d+\)`, lines[1]))
	assert.Check(t, is.Equal(lines[2], "zeta\tgateway-zeta\tnot registered"))

	res = h.run("profile", "delete", "work")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "deleted profile work\n"))
	assert.Check(t, !slotAtDelete, "the slot is stopped and removed before the agent deletes the profile")
	assert.Check(t, is.DeepEqual(h.runs[len(h.runs)-1].Argv, []string{agentBin, "profile", "delete", "work", "--yes"}),
		"--yes: the agent would ask for a confirmation and, with no terminal, cancel")
	assert.Check(t, !m.Exists("gateway-work"))
	assert.Check(t, !profile.Exists(home, "work"))

	// A profile without a slot is deleted all the same.
	res = h.run("profile", "delete", "zeta")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, !profile.Exists(home, "zeta"))

	// The agent's failure is the exit code; nothing is registered.
	h.agent = func([]string) (int, error) { return 5, nil }
	res = h.run("profile", "create", "broken")
	assert.Check(t, is.Equal(res.code, 5))
	assert.Check(t, !m.Exists("gateway-broken"))
}

func TestProfileDeleteS6Failure(t *testing.T) {
	s6test.Need(t)
	m := s6.New(t.TempDir())
	home := t.TempDir()
	mkProfile(t, home, "work")
	h := newHermes(t, nil, home)
	h.superviseWith(t, m)
	assert.NilError(t, m.Install(slotTemplate(t)("work")))

	res := h.run("profile", "delete", "work")
	assert.Check(t, res.code > 1, "exit code %d", res.code)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: stopping and removing gateway-work: "))
	assert.Check(t, is.Len(h.runs, 0), "the profile is kept when its slot cannot be removed")
	assert.Check(t, profile.Exists(home, "work"))
}

func TestGatewayAllWithoutAScanDirectory(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	gone := filepath.Join(t.TempDir(), "gone")
	h.superviseWith(t, s6.New(gone))
	res := h.run("gateway", "stop", "--all")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: open "+gone+": no such file or directory\n"))
}

func TestForegroundGatewayGetsAnAPIKeyOnce(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	h.front.Euid = 10000
	res := h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: generated an API_SERVER_KEY for profile default in "+home+"/.env"))
	env, err := agentcfg.DotEnv(filepath.Join(home, ".env"))
	assert.NilError(t, err)
	key := env["API_SERVER_KEY"]
	assert.Check(t, is.Len(key, 64))
	assert.Check(t, !strings.Contains(h.stderr.String(), key), "the key is never printed")
	res = h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Equal(h.stderr.String(), ""), "once is enough")

	// Root writes nothing into the volume.
	other := t.TempDir()
	h = newHermes(t, nil, other)
	h.front.Euid = 0
	h.run("gateway", "run")
	_, err = os.Stat(filepath.Join(other, ".env"))
	assert.Check(t, os.IsNotExist(err))
}

func TestHandOffBecomesHermesAsRoot(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	dropped := 0
	h.become = func() (bool, error) { dropped++; return true, nil }
	res := h.run("chat", "-q", "hi")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Equal(dropped, 1), "root runs the agent as hermes")
	h.env[ExecAsRootEnv] = "1"
	h.run("chat")
	assert.Check(t, is.Equal(dropped, 1), "unless %s=1", ExecAsRootEnv)
	delete(h.env, ExecAsRootEnv)
	h.become = func() (bool, error) { return false, errors.New("no such user") }
	res = h.run("chat")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "cannot become the hermes user to run the agent: no such user"))
	assert.Check(t, !res.replaced, "nothing run as root")
}

// A supervised child (a run script's, HERMES_S6_SUPERVISED_CHILD=1) works in
// $HERMES_HOME, as the agent expects; anything else keeps its directory.
func TestSupervisedChildWorksInHermesHome(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	h.run("chat")
	assert.Check(t, is.Len(h.chdirs, 0), "docker run -w is kept")

	h.env[render.SupervisedChildEnv] = "1"
	res := h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.DeepEqual(h.chdirs, []string{home}))

	h.chdirErr = errors.New("permission denied")
	res = h.run("gateway", "run")
	assert.Check(t, is.Equal(res.code, 111))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: cannot enter HERMES_HOME: permission denied\n"))
	assert.Check(t, !res.replaced, "no agent runs elsewhere")
}
