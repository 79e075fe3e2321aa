package harness

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
)

func TestProfilesLifecycleAsRootAndHermes(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)

		for i, user := range []string{"root", "hermes"} {
			name := []string{"work", "play"}[i]
			port := []string{"8710", "8711"}[i]
			c.ExecAs(user, "hermes", "profile", "create", name).Assert(t, icmd.Expected{Out: "slot gateway-" + name + ", down"})
			s := c.Slot("gateway-" + name)
			assert.Check(t, s.Exists && !s.Up && !s.WantUp, "%s: created slot must be registered down: %s", user, s)
			// Its own API port, where the agent reads it: the profile's .env.
			c.ExecAs("hermes", "sh", "-c", "echo 'API_SERVER_PORT="+port+"' >> /opt/data/profiles/"+name+"/.env").Assert(t, icmd.Success)

			c.ExecAs(user, "hermes", "-p", name, "gateway", "start").Assert(t, icmd.Success)
			poll.WaitOn(t, c.SlotIs("gateway-"+name, "up", isUp), waitOpts...)
			c.ExecAs(user, "hermes", "-p", name, "gateway", "status").Assert(t, icmd.Expected{Out: "gateway-" + name + ": up"})
			first := c.Slot("gateway-" + name).Pid
			c.ExecAs(user, "hermes", "-p", name, "gateway", "restart").Assert(t, icmd.Success)
			poll.WaitOn(t, c.SlotIs("gateway-"+name, "restarted", func(s Slot) bool { return isUp(s) && s.Pid != first }), waitOpts...)
			c.ExecAs(user, "hermes", "-p", name, "gateway", "stop").Assert(t, icmd.Success)
			s = c.Slot("gateway-" + name)
			assert.Check(t, !s.Up && !s.WantUp, "%s: stopped: %s", user, s)
			// State files written as root still belong to hermes.
			owner := c.Exec("stat", "-c", "%u", "/opt/data/profiles/"+name+"/gateway_state.json").Stdout()
			assert.Check(t, is.Equal(strings.TrimSpace(owner), "10000"), "state file owner")
		}

		// --all: stop every slot; `start --all` is refused.
		c.Exec("hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-work", "up", isUp), waitOpts...)
		c.Exec("hermes", "gateway", "start", "--all").Assert(t, icmd.Expected{ExitCode: 2, Err: "refusing `gateway start --all`"})
		c.Exec("hermes", "gateway", "status", "--all").Assert(t, icmd.Expected{Out: "gateway-work: up"})
		c.ExecAs("hermes", "hermes", "gateway", "stop", "--all").Assert(t, icmd.Success)
		for _, slot := range []string{"gateway-default", "gateway-work", "gateway-play"} {
			s := c.Slot(slot)
			assert.Check(t, !s.Up && !s.WantUp, "%s after stop --all: %s", slot, s)
		}

		// Delete stops, unregisters and removes.
		c.Exec("hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-work", "up", isUp), waitOpts...)
		c.ExecAs("hermes", "hermes", "profile", "delete", "work").Assert(t, icmd.Success)
		assert.Check(t, c.Exec("test", "-e", "/run/service/gateway-work").ExitCode != 0, "slot directory must be gone")
		assert.Check(t, c.Exec("test", "-e", "/opt/data/profiles/work").ExitCode != 0, "profile directory must be gone")
		assert.Check(t, is.Len(procsMatching(c.Procs(), `-p work gateway run`), 0))

		// Unknown profile: one clear line.
		c.Exec("hermes", "-p", "ghost", "gateway", "start").Assert(t, icmd.Expected{
			ExitCode: 1, Err: "no such gateway 'ghost': create it with `hermes profile create ghost`",
		})
	})
}

func TestBadProfileNamesRejectedAndNothingChanged(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	c := Start(t, image, Cmd("gateway", "run"))
	poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
	// The CMD's redirect records the desired state (a temp file, then a
	// rename) after the reconciler started the slot: done once it printed
	// its breadcrumb.
	poll.WaitOn(t, c.LogContains(dockertest.BreadcrumbMark), waitOpts...)
	snapshot := func() string {
		return c.Exec("sh", "-c", "ls -a /run/service /opt/data /opt/data/profiles").Stdout()
	}
	before := snapshot()
	for _, bad := range []string{"../x", "A", "-x", strings.Repeat("a", 64), "a/b", ""} {
		c.Exec("hermes", "profile", "create", bad).Assert(t, icmd.Expected{ExitCode: 2, Err: "invalid profile name"})
		c.Exec("hermes", "-p", bad, "gateway", "start").Assert(t, icmd.Expected{ExitCode: 2, Err: "invalid profile name"})
	}
	assert.Equal(t, snapshot(), before, "a rejected name must change nothing")
}
