package harness

import (
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// The agent contract (docs/agent-contract.md), checked on the running image
// with the stand-in, which behaves as the real agent on each point.

// TestHealthServedWithAGeneratedKey: the agent serves /health only with an
// API_SERVER_KEY; the image writes one per profile, never printed.
func TestHealthServedWithAGeneratedKey(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		// Up and ready (s6's readiness is the image's probe of /health/detailed),
		// then the HEALTHCHECK says so too.
		poll.WaitOn(t, c.SlotIs("gateway-default", "up and ready", func(s Slot) bool {
			return isUp(s) && c.Exec("/command/s6-svwait", "-U", "-t", "1", "/run/service/gateway-default").ExitCode == 0
		}), waitOpts...)
		c.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})
		st := c.Exec("stat", "-c", "%U %a", "/opt/data/.env").Stdout()
		assert.Check(t, is.Equal(st, "hermes 600\n"))
		env := c.Exec("cat", "/opt/data/.env").Stdout()
		key := regexp.MustCompile(`(?m)^API_SERVER_KEY=([0-9a-f]{64})$`).FindStringSubmatch(env)
		assert.Assert(t, len(key) == 2, "a 64-hex-digit key in .env:\n%s", env)
		assert.Check(t, !strings.Contains(c.Logs(), key[1]), "the key is never printed")
		// Restarted: the same key, not another.
		c.Exec("hermes", "gateway", "restart").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		assert.Check(t, is.Equal(c.Exec("cat", "/opt/data/.env").Stdout(), env))
	})
}

// TestProfileHealthIsItsOwnGateway: a profile left on the default port is
// not reported healthy on the default gateway's answer.
func TestProfileHealthIsItsOwnGateway(t *testing.T) {
	t.Parallel()
	c := Start(t, testImage(t), Cmd("gateway", "run"))
	poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
	c.Exec("hermes", "profile", "create", "clash").Assert(t, icmd.Success)
	c.Exec("hermes", "-p", "clash", "gateway", "start").Assert(t, icmd.Success)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		r := c.Exec("hermes", "healthcheck")
		if r.ExitCode != 0 && strings.Contains(r.Stderr(), "gateway-clash should be running") {
			return poll.Success()
		}
		return poll.Continue("healthcheck: %d %s", r.ExitCode, r.Combined())
	}, waitOpts...)
	// Given its own port, it serves and the container is healthy again.
	c.ExecAs("hermes", "sh", "-c", "echo API_SERVER_PORT=8720 >> /opt/data/profiles/clash/.env").Assert(t, icmd.Success)
	c.Exec("hermes", "-p", "clash", "gateway", "restart").Assert(t, icmd.Success)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if r := c.Exec("hermes", "healthcheck"); r.ExitCode != 0 {
			return poll.Continue("healthcheck: %s", r.Combined())
		}
		return poll.Success()
	}, waitOpts...)
}

// TestProfileDeleteDeletesForGood: the agent asks for a confirmation unless
// --yes; the front passes it, and the slot does not come back at boot.
func TestProfileDeleteDeletesForGood(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		out := c.ExecAs("hermes", "hermes", "profile", "create", "gone")
		out.Assert(t, icmd.Success)
		// One owner per slot: the agent's own registration did not take it.
		assert.Check(t, is.Equal(c.Exec("cat", "/run/service/gateway-gone/hermes-slot").Stdout(), "gateway gone\n"))
		assert.Check(t, is.Contains(c.Exec("cat", "/run/service/gateway-gone/run").Stdout(), "slot-exec"))
		c.Exec("hermes", "profile", "delete", "gone").Assert(t, icmd.Success)
		assert.Check(t, c.Exec("test", "-e", "/opt/data/profiles/gone").ExitCode != 0, "the profile is deleted, not cancelled")
		icmd.RunCommand("docker", "restart", "-t", "10", c.Name).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "up after restart", isUp), waitOpts...)
		assert.Check(t, c.Exec("test", "-e", "/run/service/gateway-gone").ExitCode != 0, "no slot comes back")
	})
}

// TestAgentCommandsFromDockerExecRunAsHermes: `docker exec C hermes …` as
// root hands off to the agent as hermes (upstream's exec shim does the
// same), unless HERMES_DOCKER_EXEC_AS_ROOT=1.
func TestAgentCommandsFromDockerExecRunAsHermes(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("sleep", "infinity"))
		run := func(env ...string) *icmd.Result {
			args := []string{"exec", "-e", "HERMES_AGENT_BIN=/usr/bin/id"}
			for _, e := range env {
				args = append(args, "-e", e)
			}
			return icmd.RunCommand("docker", append(args, c.Name, "hermes", "-u")...)
		}
		run().Assert(t, icmd.Expected{Out: "10000"})
		run("HERMES_DOCKER_EXEC_AS_ROOT=1").Assert(t, icmd.Expected{Out: "0"})
	})
}

// TestVolumeFromTheUpstreamImage: gateway_state.json as upstream's image
// leaves it (the runtime gateway_state, or desired_state), root-owned files
// the agent keeps: the same gateways run, the files are hermes's.
func TestVolumeFromTheUpstreamImage(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		vol := "hermes-test-upstream-" + strings.ToLower(uniqueName(t)[len("hermes-test-"):])
		icmd.RunCommand("docker", "volume", "create", vol).Assert(t, icmd.Success)
		t.Cleanup(func() { icmd.RunCommand("docker", "volume", "rm", "-f", vol) })
		seed := `set -e
cd /opt/data
printf '{"pid":123,"kind":"hermes-gateway","gateway_state":"running","platforms":{}}\n' > gateway_state.json
mkdir -p profiles/work/memories profiles/idle cron
printf 'API_SERVER_PORT=8730\n' > profiles/work/.env
printf '{"gateway_state":"stopped","desired_state":"running","updated_at":1790000000}\n' > profiles/work/gateway_state.json
printf '{"gateway_state":"running","desired_state":"stopped"}\n' > profiles/idle/gateway_state.json
touch auth.json state.db cron/jobs.json SOUL.md profiles/work/SOUL.md profiles/idle/SOUL.md
chown -R 0:0 /opt/data`
		RunToExit(t, image, Flags("-v", vol+":/opt/data", "--entrypoint", "sh"), Cmd("-c", seed)).Assert(t, icmd.Success)

		c := Start(t, image, Flags("-v", vol+":/opt/data"), Cmd("sleep", "infinity"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.SlotIs("gateway-work", "up", isUp), waitOpts...)
		s := c.Slot("gateway-idle")
		assert.Check(t, s.Exists && !s.Up && !s.WantUp, "idle was stopped upstream: %s", s)
		owners := c.Exec("stat", "-c", "%U %n", "/opt/data/auth.json", "/opt/data/state.db", "/opt/data/cron", "/opt/data/cron/jobs.json", "/opt/data/profiles/work/memories").Stdout()
		for _, line := range strings.Split(strings.TrimSpace(owners), "\n") {
			assert.Check(t, strings.HasPrefix(line, "hermes "), "repaired: %s", line)
		}
		// What upstream's gateway wrote is kept beside the intent.
		doc := c.Exec("cat", "/opt/data/gateway_state.json").Stdout()
		assert.Check(t, is.Contains(doc, `"kind":"hermes-gateway"`), doc)
	})
}

// TestExitCodesAsTheAgentMeansThem: 75 asks for a restart (restarted), 0
// is a clean stop (not restarted), as the agent's own finish script has it.
func TestExitCodesAsTheAgentMeansThem(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		first := c.Slot("gateway-default").Pid
		// SIGUSR1: the agent's in-band restart, exit 75.
		c.ExecAs("hermes", "sh", "-c", "kill -USR1 "+itoa(first)).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "restarted after exit 75", func(s Slot) bool { return isUp(s) && s.Pid != first }), waitOpts...)
		poll.WaitOn(t, c.LogContains("gateway-default exited with code 75"), waitOpts...)
		// SIGINT: a clean stop, exit 0: final.
		second := c.Slot("gateway-default").Pid
		c.ExecAs("hermes", "sh", "-c", "kill -INT "+itoa(second)).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "down after exit 0, not wanted up", func(s Slot) bool {
			return s.Exists && !s.Up && !s.WantUp && s.ExitCode == 0
		}), waitOpts...)
		poll.WaitOn(t, c.LogContains("gateway-default: stopped cleanly (exit 0); not restarting"), waitOpts...)
		assert.Check(t, c.Running(), "the container lives on")
	})
}
