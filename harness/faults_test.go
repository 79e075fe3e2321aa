package harness

import (
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// serving polls until the profile's gateway answers the readiness probe.
func serving(c *Container, profile string) poll.Check {
	return func(poll.LogT) poll.Result {
		if r := c.Exec("hermes-s6", "probe", profile); r.ExitCode != 0 {
			return poll.Continue("%s not serving: %s", profile, strings.TrimSpace(r.Combined()))
		}
		return poll.Success()
	}
}

// $HERMES_HOME on a small tmpfs that fills up: recording a desired state
// fails with the reason and leaves the state file as it was (and no temp
// file), the gateway keeps serving, and its output keeps flowing (the
// logger does not stall the pipe: s6-log keeps copying to docker logs and
// holds the file copy back until there is room).
func TestFullDiskKeepsTheGatewayAndThePreviousState(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		// SYS_PTRACE: for the test to write into the gateway's stdout pipe
		// through /proc/PID/fd/1 (the gateway is not dumpable).
		c := Start(t, image, Flags("--mount", "type=tmpfs,destination=/opt/data,tmpfs-size=16m", "--cap-add", "SYS_PTRACE"), Cmd("gateway", "run"))
		poll.WaitOn(t, serving(c, "default"), waitOpts...)
		state := func() string { return c.Exec("cat", "/opt/data/gateway_state.json").Stdout() }
		before := state()
		assert.Check(t, is.Contains(before, `"desired_state":"running"`))

		// Fill it up, as hermes (whatever hermes can write, an agent can).
		c.ExecAs("hermes", "sh", "-c", "cat /dev/zero > /opt/data/fill; true").Assert(t, icmd.Success)
		c.Exec("sh", "-c", "df -P /opt/data | tail -1").Assert(t, icmd.Expected{Out: " 100% "})

		for _, user := range []string{"root", "hermes"} {
			c.ExecAs(user, "hermes", "gateway", "stop").Assert(t, icmd.Expected{
				ExitCode: 1, Err: "hermes: recording desired state in /opt/data: write /opt/data/.gateway_state.json.",
			})
			assert.Check(t, is.Equal(state(), before), "%s: the previous state is intact", user)
			assert.Check(t, is.Equal(c.Exec("sh", "-c", "ls -a /opt/data | grep -c '^.gateway_state.json.' || true").Stdout(), "0\n"), "no temp file left")
			assert.Check(t, isUp(c.Slot("gateway-default")), "nothing was stopped: %s", c.Slot("gateway-default"))
		}
		assert.Check(t, is.Contains(c.Exec("hermes", "gateway", "stop").Stderr(), "no space left on device"))

		// 4 MB more output through the gateway's own stdout pipe: written
		// in full, and it is in docker logs; the gateway still serves.
		gw := agentGateways(c, "default")
		assert.Assert(t, is.Len(gw, 1))
		c.Exec("timeout", "60", "sh", "-c", "yes full-disk-output-line | head -c 4000000 > /proc/"+itoa(gw[0].Pid)+"/fd/1").Assert(t, icmd.Success)
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			n := strings.Count(c.Logs(), "full-disk-output-line")
			if n >= 4000000/len("full-disk-output-line\n") {
				return poll.Success()
			}
			return poll.Continue("%d lines in docker logs so far", n)
		}, waitOpts...)
		poll.WaitOn(t, serving(c, "default"), waitOpts...)
		assert.Check(t, is.Len(agentGateways(c, "default"), 1), "the same gateway, never restarted")
		assert.Check(t, is.Equal(agentGateways(c, "default")[0].Pid, gw[0].Pid))

		// Room again: the file copy held back in s6-log's memory is written,
		// and the stop is recorded and done.
		c.Exec("rm", "/opt/data/fill").Assert(t, icmd.Success)
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			out := c.Exec("sh", "-c", "cat /opt/data/logs/gateways/default/* | grep -c full-disk-output-line").Stdout()
			if n, _ := strconv.Atoi(strings.TrimSpace(out)); n >= 4000000/len("full-disk-output-line\n") {
				return poll.Success()
			}
			return poll.Continue("%s lines in the log files so far", strings.TrimSpace(out))
		}, waitOpts...)
		c.Exec("hermes", "gateway", "stop").Assert(t, icmd.Success)
		assert.Check(t, is.Contains(state(), `"desired_state":"stopped"`))
		poll.WaitOn(t, c.SlotIs("gateway-default", "down", func(s Slot) bool { return !s.Up && !s.WantUp }), waitOpts...)
	})
}

// A value the gateway or the dashboard cannot work with is one clear line
// and a slot that stays down (exit 78), not a restart every second.
func TestValuesThatCannotWorkLeaveTheSlotDown(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Env("HERMES_DASHBOARD=1", "HERMES_DASHBOARD_PORT=abc", "API_SERVER_PORT=abc"), Cmd("gateway", "run"))
		for _, slot := range []string{"dashboard", "gateway-default"} {
			poll.WaitOn(t, c.SlotIs(slot, "down after exit 78 and settled for 2s", func(s Slot) bool {
				return s.Exists && !s.Up && !s.WantUp && s.ExitCode == 78 && s.Seconds >= 2
			}), waitOpts...)
		}
		logs := c.Logs()
		assert.Check(t, is.Equal(strings.Count(logs, `hermes: dashboard not started: HERMES_DASHBOARD_PORT="abc": "abc" is not a port (1-65535)`), 1), logs)
		assert.Check(t, is.Equal(strings.Count(logs, `hermes: gateway of profile default not started: API_SERVER_PORT="abc" (from the environment) is not a port (1-65535)`), 1), logs)
		assert.Check(t, !strings.Contains(logs, "invalid int value"), "the agent never got the value")
		c.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{ExitCode: 1, Err: "down after exit 78 (fatal configuration)"})
		assert.Check(t, c.Running())
	})
}

// Bad files in the volume at boot: a binary desired-state file, a huge
// config.yaml, an empty .env. The reconciler says why the gateway is down
// and boots; `hermes gateway start` replaces the state file and the gateway
// serves on its defaults, with a line about what was ignored.
func TestBadFilesAtBootGiveALineAndDefaults(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	vol := sharedVolume(t)
	icmd.RunCommand("docker", "run", "--rm", "--entrypoint", "sh", "-v", vol+":/opt/data", image, "-c",
		`printf '\000\001\377binary' > /opt/data/gateway_state.json && : > /opt/data/.env &&
		 head -c 2000000 /dev/zero | tr '\000' '#' > /opt/data/config.yaml && chown -R 10000:10000 /opt/data`).Assert(t, icmd.Success)
	c := Start(t, image, Flags("-v", vol+":/opt/data"), Cmd("sleep", "infinity"))
	poll.WaitOn(t, c.LogContains("hermes-reconcile: default gateway-default: down (corrupt state file /opt/data/gateway_state.json: "), waitOpts...)
	assert.Check(t, is.Equal(c.Exec("head", "-c", "9", "/opt/data/gateway_state.json").Stdout(), "\x00\x01\xffbinary"), "left as it was")
	assert.Check(t, !isUp(c.Slot("gateway-default")))

	c.Exec("hermes", "gateway", "start").Assert(t, icmd.Success)
	poll.WaitOn(t, serving(c, "default"), waitOpts...)
	assert.Check(t, is.Contains(c.Logs(), "hermes: warning: profile default: /opt/data/config.yaml is larger than 1048576 bytes: hermes-s6 ignores it"))
	assert.Check(t, is.Contains(c.Exec("cat", "/opt/data/gateway_state.json").Stdout(), `"desired_state":"running"`))
}
