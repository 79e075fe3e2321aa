package front

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/gwlock"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// holdLock holds the gateway lock of the profile directory dir through an
// open file of its own, as another container's gateway does.
func holdLock(t *testing.T, dir string, h gwlock.Holder) *gwlock.Lock {
	t.Helper()
	l, err := gwlock.Open(dir, ".", true)
	assert.NilError(t, err)
	assert.NilError(t, l.TryLock())
	assert.NilError(t, l.Record(h))
	t.Cleanup(func() { l.Close() })
	return l
}

var otherContainer = gwlock.Holder{Host: "aaaabbbbcccc", Boot: "x", PidNS: "pid:[1]", Pid: 312, Since: "2030-01-02T03:04:05Z", Profile: "work"}

func TestSupervisedGatewayWaitsForTheLockOfAnotherContainer(t *testing.T) {
	home := t.TempDir()
	mkProfile(t, home, "work")
	dir := filepath.Join(home, "profiles", "work")
	other := holdLock(t, dir, otherContainer)
	h := newHermes(t, nil, home)
	h.env["HERMES_S6_SUPERVISED_CHILD"] = "1"
	h.env["API_SERVER_KEY"] = "0123456789abcdef0123"
	var pauses []time.Duration
	execsWhileWaiting := -1
	h.front.GatewayLock = func(name string, replace bool) error {
		return h.front.gatewayLock(name, replace, func(d time.Duration) {
			pauses = append(pauses, d)
			execsWhileWaiting = len(h.execs)
			if len(pauses) == 3 {
				other.Close() // `docker rm -f` of the other container
			}
		})
	}
	res := h.run("-p", "work", "gateway", "run", "--replace")
	t.Cleanup(func() { h.front.held.Close() })

	assert.Check(t, res.replaced, "the gateway is exec'd once the lock is ours: %s", h.stderr.String())
	assert.Check(t, is.Equal(execsWhileWaiting, 0), "nothing exec'd while the lock was held")
	assert.Check(t, is.DeepEqual(pauses, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}))
	lines := strings.Split(strings.TrimSpace(h.stderr.String()), "\n")
	assert.Check(t, is.Len(lines, 2), "%q", lines)
	assert.Check(t, is.Contains(lines[0], "hermes: the gateway lock "+filepath.Join(dir, gwlock.FileName)+" is held by container aaaabbbbcccc (gateway pid 312 there, since 2030-01-02T03:04:05Z)"))
	assert.Check(t, is.Contains(lines[1], "took the gateway lock"))

	// The exec'd agent holds it: inheritable, and named as this container's.
	fd := h.front.held.Fd()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(flags, 0), "not close-on-exec")
	l, err := gwlock.Open(dir, ".", false)
	assert.NilError(t, err)
	defer l.Close()
	assert.Check(t, l.Held())
	holder, err := l.Holder()
	assert.NilError(t, err)
	assert.Check(t, holder.SameContainer(gwlock.Self("work", time.Now())))
	assert.Check(t, is.Equal(holder.Pid, os.Getpid()), "the pid the agent will have (exec keeps it)")
	assert.Check(t, heldElsewhere(home, "work") == nil, "held here")
}

func TestProbeStatusAndReconcileSeeTheOtherContainer(t *testing.T) {
	home := t.TempDir()
	holdLock(t, home, otherContainer)
	err := heldElsewhere(home, "default")
	assert.Check(t, is.ErrorContains(err, "the gateway of profile default runs in another container sharing the volume: container aaaabbbbcccc (gateway pid 312 there"))
	err = Probe(home, "default", func(string) string { return "" }, time.Second)
	assert.Check(t, is.ErrorContains(err, "runs in another container"), "not ready while another container serves the profile")
}

func TestALockFileThatCannotBeUsedIsReportedAndTheGatewayRuns(t *testing.T) {
	home := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	assert.NilError(t, os.WriteFile(target, []byte("keep"), 0o644))
	assert.NilError(t, os.Symlink(target, filepath.Join(home, gwlock.FileName)))
	h := newHermes(t, nil, home)
	h.env["API_SERVER_KEY"] = "0123456789abcdef0123"
	h.front.GatewayLock = func(name string, replace bool) error {
		return h.front.gatewayLock(name, replace, func(time.Duration) { t.Fatal("no waiting") })
	}
	res := h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: warning: profile default: no cross-container gateway lock: open "+filepath.Join(home, gwlock.FileName)))
	b, _ := os.ReadFile(target)
	assert.Check(t, is.Equal(string(b), "keep"))
}

func TestBadGatewaySettingsStopWithExit78AndChangeNothing(t *testing.T) {
	for _, tc := range []struct {
		name, dotenv, config string
		env                  map[string]string
		want                 string
	}{
		{name: "port not a number", env: map[string]string{"API_SERVER_PORT": "abc"},
			want: `hermes: gateway of profile default not started: API_SERVER_PORT="abc" (from the environment) is not a port (1-65535); fix it, then ` + "`hermes gateway start`" + ` (exit 78: not restarted)`},
		{name: "port out of range in .env", dotenv: "API_SERVER_PORT=70000\n", want: `API_SERVER_PORT="70000" (from HOME/.env) is not a port`},
		{name: "port in config.yaml", config: "platforms:\n  api_server:\n    extra:\n      port: eighty\n", want: `HOME/config.yaml platforms.api_server.extra.port: "eighty" is not a port`},
		{name: "host", env: map[string]string{"API_SERVER_HOST": "0.0.0.0:8642"}, want: `API_SERVER_HOST="0.0.0.0:8642" (from the environment): "0.0.0.0:8642" is neither an IP address nor a host name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if tc.dotenv != "" {
				assert.NilError(t, os.WriteFile(filepath.Join(home, ".env"), []byte(tc.dotenv), 0o600))
			}
			if tc.config != "" {
				assert.NilError(t, os.WriteFile(filepath.Join(home, "config.yaml"), []byte(tc.config), 0o600))
			}
			before := tree(t, home)
			h := newHermes(t, nil, home)
			h.env["HERMES_S6_SUPERVISED_CHILD"] = "1"
			for k, v := range tc.env {
				h.env[k] = v
			}
			h.front.Euid = 10000
			h.front.GatewayLock = func(name string, replace bool) error {
				return h.front.gatewayLock(name, replace, func(time.Duration) {})
			}
			res := h.run("gateway", "run", "--replace")
			assert.Check(t, !res.replaced, "the gateway is not started")
			assert.Check(t, is.Equal(res.code, 78))
			msg := strings.TrimSpace(h.stderr.String())
			assert.Check(t, is.Equal(strings.Count(msg, "\n"), 0), "one line: %q", msg)
			assert.Check(t, is.Contains(msg, strings.ReplaceAll(tc.want, "HOME", home)))
			assert.Check(t, is.DeepEqual(tree(t, home), before), "nothing written: no key, no lock file")
		})
	}
}

func TestUnreadableFilesAreAWarningAndTheDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, file, body, want string
	}{
		{"huge .env", ".env", strings.Repeat("# padding\n", 110000), "HOME/.env is larger than 1048576 bytes: hermes-s6 ignores it"},
		{"binary .env", ".env", "API_SERVER_KEY=0123456789abcdef0123\n\x00\xff\xfe", "HOME/.env is not text (NUL bytes or invalid UTF-8)"},
		{"huge config.yaml", "config.yaml", strings.Repeat("# padding\n", 110000), "HOME/config.yaml is larger than 1048576 bytes: hermes-s6 ignores it (the API server port is 8642"},
		{"binary config.yaml", "config.yaml", "\x00\x01\x02\xff", "HOME/config.yaml is not valid YAML"},
		{"truncated config.yaml", "config.yaml", "platforms:\n  api_server:\n    extra: {port: 87", "HOME/config.yaml is not valid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			p := filepath.Join(home, tc.file)
			assert.NilError(t, os.WriteFile(p, []byte(tc.body), 0o600))
			h := newHermes(t, nil, home)
			h.env["HERMES_S6_SUPERVISED_CHILD"] = "1"
			h.env["API_SERVER_KEY"] = "0123456789abcdef0123"
			res := h.run("gateway", "run", "--replace")
			assert.Check(t, res.replaced, "the gateway starts: %s", h.stderr.String())
			assert.Check(t, is.Contains(h.stderr.String(), "hermes: warning: profile default: "+strings.ReplaceAll(tc.want, "HOME", home)))
			b, err := os.ReadFile(p)
			assert.NilError(t, err)
			assert.Check(t, string(b) == tc.body, "the file is left as it was")
			port, err := agentcfg.Port(home, func(string) string { return "" })
			assert.NilError(t, err, "the probe carries on with the defaults")
			assert.Check(t, is.Equal(port, agentcfg.DefaultPort))
		})
	}
}

func TestSupervisedDashboardWithValuesThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--host", "127.0.0.1", "--port", "abc", "--no-open"}, `hermes: dashboard not started: HERMES_DASHBOARD_PORT="abc": "abc" is not a port (1-65535); fix it and recreate the container (exit 78: not restarted)`},
		{[]string{"--host", "0.0.0.0", "--port", "0", "--no-open"}, `HERMES_DASHBOARD_PORT="0": "0" is not a port`},
		{[]string{"--host", "my host", "--port", "9119", "--no-open"}, `HERMES_DASHBOARD_HOST="my host": "my host" is neither an IP address nor a host name`},
		{[]string{"--host=http://x", "--port=9119"}, `HERMES_DASHBOARD_HOST="http://x"`},
	} {
		h := newHermes(t, nil, t.TempDir())
		h.env["HERMES_S6_SUPERVISED_CHILD"] = "1"
		res := h.run(append([]string{"dashboard"}, tc.args...)...)
		assert.Check(t, !res.replaced, "%v: not started", tc.args)
		assert.Check(t, is.Equal(res.code, 78), "%v", tc.args)
		assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(h.stderr.String()), "\n"), 0), "one line")
		assert.Check(t, is.Contains(h.stderr.String(), tc.want))
	}
	// Good values, and the same bad ones outside a slot: the agent's to judge.
	for _, env := range []map[string]string{{"HERMES_S6_SUPERVISED_CHILD": "1"}, {}} {
		h := newHermes(t, nil, t.TempDir())
		for k, v := range env {
			h.env[k] = v
		}
		args := []string{"dashboard", "--host", "::", "--port", "9119", "--no-open"}
		if len(env) == 0 {
			args[4] = "abc"
		}
		res := h.run(args...)
		assert.Check(t, res.replaced, "%v", args)
		assert.Check(t, is.DeepEqual(res.exec.Argv, append([]string{agentBin}, args...)))
	}
}

// The CMD's redirect does not start again a gateway that already gave up on
// its configuration this boot (exit 78): one attempt, one line.
func TestGatewayRunLeavesASlotThatGaveUpAlone(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	runs := filepath.Join(t.TempDir(), "runs")
	front := filepath.Join(t.TempDir(), "front")
	assert.NilError(t, os.WriteFile(front, []byte("#!/bin/sh\necho run >> "+runs+"\nexit 78\n"), 0o755))
	base := slotTemplate(t)
	h.template = func(name string) render.Slot { s := base(name); s.Front = front; return s }
	h.superviseWith(t, m)
	assert.NilError(t, h.front.Admin.Register("default"))
	assert.NilError(t, m.Start("gateway-default"))
	poll.WaitOn(t, slotIs(m, "gateway-default", func(s s6.Status) bool { return isDown(s) && s.ExitCode == 78 }, "down after exit 78"), pollOpts...)

	res := h.run("gateway", "run")
	assert.Check(t, res.replaced)
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: gateway-default is down after exit 78 (fatal configuration): fix it, then `hermes gateway start`\n"))
	st, err := m.Status("gateway-default")
	assert.NilError(t, err)
	assert.Check(t, isDown(st), "not started again: %s", st)
	b, err := os.ReadFile(runs)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "run\n"), "one attempt")
}
