package harness

import (
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// gatewayRE matches a gateway process (the front or the agent), not rc.init.
const gatewayRE = `^\S*hermes(-agent)?( -p \S+)? gateway run`

// cmdProcess is the container's CMD process: the child of the stage-2
// process (rc.init).
func cmdProcess(procs []Proc) (Proc, bool) {
	for _, st := range procsMatching(procs, `rc\.init top`) {
		for _, p := range procs {
			if p.PPid == st.Pid {
				return p, true
			}
		}
	}
	return Proc{}, false
}

func TestRedirectFires(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up and wanted up", isUp), waitOpts...)
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		poll.WaitOn(t, c.LogContains(dockertest.BreadcrumbMark), waitOpts...)

		assert.Check(t, c.Running(), "the container must keep running")
		procs := c.Procs()
		cmd, ok := cmdProcess(procs)
		assert.Assert(t, ok, "no CMD process under rc.init:\n%s", procTree(procs))
		assert.Check(t, is.Equal(cmd.Args, "sleep infinity"), "the CMD process must be `sleep infinity`:\n%s", procTree(procs))

		logs := c.Logs()
		assert.Check(t, is.Contains(logs, "s6 supervision"))
		assert.Check(t, is.Contains(logs, "--no-supervise"))
		assert.Check(t, is.Contains(logs, "HERMES_GATEWAY_NO_SUPERVISE=1"))
		assert.Check(t, is.Contains(logs, "HERMES_DASHBOARD=1"))
	})
}

// TestNoRecursion: the supervised `gateway run --replace` must never
// redirect itself (HERMES_S6_SUPERVISED_CHILD=1 in every run script).
func TestNoRecursion(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		// Wait until the CMD has become `sleep infinity` (the front execs it
		// right after starting the slot) and the supervised slot has settled
		// into what it runs: a gateway (right) or a second `sleep infinity`
		// (recursion).
		var procs []Proc
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			procs = c.Procs()
			cmd, ok := cmdProcess(procs)
			if ok && cmd.Args == "sleep infinity" && (len(procsMatching(procs, gatewayRE)) > 0 || len(procsMatching(procs, `^sleep infinity$`)) > 1) {
				return poll.Success()
			}
			return poll.Continue("not settled yet:\n%s", procTree(procs))
		}, waitOpts...)
		sleeps := procsMatching(procs, `^sleep infinity$`)
		gateways := procsMatching(procs, gatewayRE)
		assert.Check(t, is.Len(sleeps, 1), "want exactly one `sleep infinity` (the CMD); a second one means the supervised gateway redirected itself (recursion guard missing):\n%s", procTree(procs))
		assert.Check(t, is.Len(gateways, 1), "want exactly one gateway process; none means the supervised run redirected into `sleep infinity` instead of serving (recursion guard missing):\n%s", procTree(procs))
		if len(sleeps) == 1 {
			cmd, _ := cmdProcess(procs)
			assert.Check(t, is.Equal(sleeps[0].Pid, cmd.Pid), "`sleep infinity` must be the CMD wrapper's process (child of rc.init):\n%s", procTree(procs))
		}
		slot := c.Slot("gateway-default")
		// Reading another user's environ needs that user (no CAP_SYS_PTRACE).
		env := c.ExecAs("hermes", "sh", "-c", "tr '\\000' '\\n' < /proc/"+itoa(slot.Pid)+"/environ").Stdout()
		assert.Check(t, is.Contains(env, "HERMES_S6_SUPERVISED_CHILD=1\n"), "the supervised gateway must carry the recursion guard")
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
	})
}

func TestNoSuperviseFlagKeepsForegroundSemantics(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run", "--no-supervise"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		assertForeground(t, c)

		// The container exit code is the gateway's: crash it (exit 70).
		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			if c.Running() {
				return poll.Continue("container still running after the gateway crashed")
			}
			return poll.Success()
		}, waitOpts...)
		assert.Equal(t, c.Inspect("{{.State.ExitCode}}"), "70", "container exit code must be the gateway's")
	})
}

// assertForeground checks the pre-s6 semantics: no breadcrumb, the gateway
// is the CMD process itself, no `sleep infinity`, gateway-default not wanted up.
func assertForeground(t *testing.T, c *Container) {
	t.Helper()
	procs := c.Procs()
	cmd, ok := cmdProcess(procs)
	assert.Assert(t, ok, "no CMD process:\n%s", procTree(procs))
	assert.Check(t, strings.Contains(cmd.Args, "gateway run"), "the CMD process must be the gateway itself:\n%s", procTree(procs))
	assert.Check(t, is.Len(procsMatching(procs, `^sleep infinity$`), 0), "no `sleep infinity` in foreground mode:\n%s", procTree(procs))
	assert.Check(t, !strings.Contains(c.Logs(), dockertest.BreadcrumbMark), "no breadcrumb in foreground mode")
	s := c.Slot("gateway-default")
	assert.Check(t, s.Exists && !s.WantUp && !s.Up, "gateway-default must exist and not be wanted up: %s", s)
}

func TestNoSuperviseEnvTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value   string
		optsOut bool
	}{
		{"1", true}, {"true", true}, {"YES", true},
		{"0", false}, {"false", false}, {"ture", false}, {"", false},
	} {
		t.Run("value="+tc.value, func(t *testing.T) {
			t.Parallel()
			image := testImage(t)
			c := Start(t, image, Publish(8642), Env("HERMES_GATEWAY_NO_SUPERVISE="+tc.value), Cmd("gateway", "run"))
			poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
			if tc.optsOut {
				assertForeground(t, c)
				return
			}
			poll.WaitOn(t, c.LogContains(dockertest.BreadcrumbMark), waitOpts...)
			assert.Check(t, isUp(c.Slot("gateway-default")), "HERMES_GATEWAY_NO_SUPERVISE=%q must not opt out", tc.value)
		})
	}
}
