package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

func TestDashboardSupervisedAlongside(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642, 9300),
			// A non-loopback dashboard needs an auth provider (the agent
			// refuses to bind otherwise).
			Env("HERMES_DASHBOARD=1", "HERMES_DASHBOARD_HOST=0.0.0.0", "HERMES_DASHBOARD_PORT=9300",
				"HERMES_DASHBOARD_BASIC_AUTH_USERNAME=admin", "HERMES_DASHBOARD_BASIC_AUTH_PASSWORD=test-password"),
			Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.SlotIs("dashboard", "up", isUp), waitOpts...)
		poll.WaitOn(t, pageContains(c.URL(9300, "/"), "Hermes dashboard"), waitOpts...)

		// Killed: restarted with a new pid, and the port answers again.
		first := c.Slot("dashboard").Pid
		c.ExecAs("hermes", "sh", "-c", "kill -KILL "+itoa(first)).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("dashboard", "restarted with a new pid", func(s Slot) bool { return isUp(s) && s.Pid != first }), waitOpts...)
		poll.WaitOn(t, pageContains(c.URL(9300, "/"), "Hermes dashboard"), waitOpts...)
	})
}

func TestDashboardDownWithoutOptIn(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		// Down, not wanted up, and still so two seconds later: no restart loop.
		poll.WaitOn(t, c.SlotIs("dashboard", "down and settled for 2s", func(s Slot) bool {
			return s.Exists && !s.Up && !s.WantUp && s.Seconds >= 2
		}), waitOpts...)
		assert.Check(t, !strings.Contains(c.Logs(), "dashboard started"), "the dashboard must never have started")
	})
}

func pageContains(url, want string) poll.Check {
	return func(poll.LogT) poll.Result {
		body, err := Get(url)
		if err != nil {
			return poll.Continue("%v", err)
		}
		if !strings.Contains(body, want) {
			return poll.Continue("%s answered %q", url, body)
		}
		return poll.Success()
	}
}

func TestCrashRestartsWithNewPid(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		h, err := c.GetHealth(8642)
		assert.NilError(t, err)
		// The watcher has seen it up: its report of the crash is asserted.
		poll.WaitOn(t, c.LogContains(fmt.Sprintf("gateway-default started (pid %d)", h.Pid)), waitOpts...)

		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, c.Healthy(8642, func(n Health) bool { return n.Pid != h.Pid }), waitOpts...)
		assert.Check(t, c.Running(), "the container must survive a gateway crash")
		poll.WaitOn(t, c.LogContains("gateway-default exited with code 70"), waitOpts...)

		// Killed by a signal: restarted too.
		h2, _ := c.GetHealth(8642)
		assert.NilError(t, Post(c.URL(8642, "/debug/crash?signal=KILL")))
		poll.WaitOn(t, c.Healthy(8642, func(n Health) bool { return n.Pid != h2.Pid }), waitOpts...)
		assert.Check(t, c.Running())
	})
}

func TestExit78StaysDownWithoutLoop(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		c.Exec("hermes", "profile", "create", "broken").Assert(t, icmd.Success)
		c.ExecAs("hermes", "sh", "-c", "printf 'standin:\\n  fail_start: true\\n' > /opt/data/profiles/broken/config.yaml").Assert(t, icmd.Success)
		c.Exec("hermes", "-p", "broken", "gateway", "start").Assert(t, icmd.Success)

		poll.WaitOn(t, c.SlotIs("gateway-broken", "down after exit 78, not wanted up", func(s Slot) bool {
			return s.Exists && !s.Up && !s.WantUp && s.ExitCode == 78
		}), waitOpts...)
		poll.WaitOn(t, c.LogContains("gateway-broken gave up after exit 78"), waitOpts...)
		// No loop: two seconds later it is still down and it started once.
		poll.WaitOn(t, c.SlotIs("gateway-broken", "still down 2s later", func(s Slot) bool {
			return !s.Up && !s.WantUp && s.Seconds >= 2
		}), waitOpts...)
		assert.Check(t, is.Equal(strings.Count(c.Logs(), "gateway-broken: fatal configuration error"), 1), "exactly one start attempt")
		assert.Check(t, c.Running())
	})
}

func TestDockerStopSendsSIGTERMAndExitsInTime(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Env("HERMES_DASHBOARD=1"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		poll.WaitOn(t, c.SlotIs("dashboard", "up", isUp), waitOpts...)
		start := time.Now()
		r := icmd.RunCommand("docker", "stop", "-t", "10", c.Name)
		took := time.Since(start)
		r.Assert(t, icmd.Success)
		t.Logf("docker stop took %s", took)
		assert.Check(t, took < 10*time.Second, "docker stop must not need the engine's SIGKILL (took %s)", took)
		// The gateway got SIGTERM and stopped on its own: its last runtime
		// record says so (the agent's gateway/status.py).
		// (docker cp to - writes a tar stream: the file is in it as it is.)
		state := icmd.RunCommand("docker", "cp", c.Name+":/opt/data/gateway_state.json", "-").Stdout()
		assert.Check(t, is.Contains(state, `"gateway_state":"stopped"`), state)
		assert.Check(t, is.Equal(c.Inspect("{{.State.ExitCode}}"), "0"))
	})
}

func TestSlowGatewayGetsToFlushOnStop(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
	poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
	c.ExecAs("hermes", "sh", "-c", "printf 'standin:\\n  stop_delay_ms: 1500\\n' > /opt/data/config.yaml").Assert(t, icmd.Success)
	before, err := c.GetHealth(8642)
	assert.NilError(t, err)
	c.Exec("hermes", "gateway", "restart").Assert(t, icmd.Success)
	poll.WaitOn(t, c.Healthy(8642, func(h Health) bool { return h.Pid != before.Pid }), waitOpts...)
	icmd.RunCommand("docker", "stop", "-t", "10", c.Name).Assert(t, icmd.Success)
	assert.Check(t, is.Contains(c.Logs(), "standin.stop_delay_ms: waited 1500ms"), "a slow gateway must get to finish its shutdown")
}

func TestDockerRestartRestoresDesiredState(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		for _, p := range []string{"alpha", "beta"} {
			c.Exec("hermes", "profile", "create", p).Assert(t, icmd.Success)
		}
		c.ExecAs("hermes", "sh", "-c", "echo 'API_SERVER_PORT=8701' >> /opt/data/profiles/alpha/.env").Assert(t, icmd.Success)
		c.Exec("hermes", "-p", "alpha", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-alpha", "up", isUp), waitOpts...)
		// A stale pid file for beta (never started) must be removed at boot.
		c.ExecAs("hermes", "sh", "-c", "echo 99999 > /opt/data/profiles/beta/gateway.pid").Assert(t, icmd.Success)

		icmd.RunCommand("docker", "restart", "-t", "10", c.Name).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "up after restart", isUp), waitOpts...)
		poll.WaitOn(t, c.SlotIs("gateway-alpha", "up after restart", isUp), waitOpts...)
		s := c.Slot("gateway-beta")
		assert.Check(t, s.Exists && !s.Up && !s.WantUp, "beta was never started: %s", s)
		r := c.Exec("test", "-e", "/opt/data/profiles/beta/gateway.pid")
		assert.Check(t, r.ExitCode != 0, "stale pid file must be removed at boot")

		// A stopped gateway stays stopped across a restart, even with the
		// `gateway run` CMD.
		c.Exec("hermes", "gateway", "stop").Assert(t, icmd.Success)
		icmd.RunCommand("docker", "restart", "-t", "10", c.Name).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-alpha", "up after second restart", isUp), waitOpts...)
		poll.WaitOn(t, c.LogContains("stays stopped"), waitOpts...)
		s = c.Slot("gateway-default")
		assert.Check(t, s.Exists && !s.Up && !s.WantUp, "default was stopped: %s", s)
		boot := c.Exec("cat", "/opt/data/logs/container-boot.log").Stdout()
		assert.Check(t, is.Contains(boot, "default gateway-default: down (desired state stopped)"))
		assert.Check(t, is.Contains(boot, "alpha gateway-alpha: started (desired state running)"))
	})
}

// TestHealthcheckCommand: the HEALTHCHECK command is healthy while the
// gateway that should run answers, and unhealthy once it cannot.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		c.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})
		assert.Check(t, is.Contains(c.Inspect("{{json .Config.Healthcheck}}"), "healthcheck"))

		// A fatal configuration: the gateway exits 78, stays down: unhealthy.
		c.ExecAs("hermes", "sh", "-c", "printf 'standin:\\n  fail_start: true\\n' > /opt/data/config.yaml").Assert(t, icmd.Success)
		c.Exec("hermes", "gateway", "restart").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "down after exit 78", func(s Slot) bool { return !s.Up && s.ExitCode == 78 }), waitOpts...)
		c.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{ExitCode: 1, Err: "gateway-default should be running"})

		// Stopped on purpose: nothing should run, so healthy again.
		c.Exec("hermes", "gateway", "stop").Assert(t, icmd.Success)
		c.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})
	})
}
