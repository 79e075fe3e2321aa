package harness

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// sharedVolume is a named volume for containers that share one
// $HERMES_HOME, removed when the test ends (after its containers).
func sharedVolume(t *testing.T) string {
	t.Helper()
	name := uniqueName(t)
	icmd.RunCommand("docker", "volume", "create", name).Assert(t, icmd.Success)
	t.Cleanup(func() { icmd.RunCommand("docker", "volume", "rm", "-f", name) })
	return name
}

// agentGateways lists the agent's gateway processes of profile (the
// stand-in's argv: `hermes-agent [-p NAME] gateway run …`).
func agentGateways(c *Container, profile string) []Proc {
	re := `^/opt/hermes/bin/hermes-agent gateway run`
	if profile != "default" {
		re = `^/opt/hermes/bin/hermes-agent -p ` + profile + ` gateway run`
	}
	var live []Proc
	for _, p := range procsMatching(c.Procs(), re) {
		if p.State != "Z" {
			live = append(live, p)
		}
	}
	return live
}

// lockHolder is the host named in a profile's lock file, read in c.
func lockHolder(c *Container, dir string) string {
	var h struct {
		Host string `json:"host"`
	}
	out := c.Exec("cat", dir+"/.hermes-s6.lock").Stdout()
	if json.Unmarshal([]byte(out), &h) != nil {
		return ""
	}
	return h.Host
}

// oneGatewayEach checks, across every container given, that each profile
// has at most one gateway process.
func oneGatewayEach(t *testing.T, profiles []string, cs ...*Container) {
	t.Helper()
	for _, p := range profiles {
		total := 0
		var where []string
		for _, c := range cs {
			n := len(agentGateways(c, p))
			total += n
			where = append(where, fmt.Sprintf("%s: %d", c.Name, n))
		}
		assert.Check(t, total <= 1, "profile %s: %d gateways (%s)", p, total, strings.Join(where, ", "))
	}
}

func TestOneGatewayPerProfileAcrossContainers(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		vol := sharedVolume(t)
		profiles := []string{"default", "work"}
		a := Start(t, image, Flags("-v", vol+":/opt/data"), Cmd("gateway", "run"))
		hostA := a.Inspect("{{.Config.Hostname}}")
		poll.WaitOn(t, a.SlotIs("gateway-default", "up", isUp), waitOpts...)
		a.Exec("hermes", "profile", "create", "work").Assert(t, icmd.Success)
		a.ExecAs("hermes", "sh", "-c", "echo API_SERVER_PORT=8710 >> /opt/data/profiles/work/.env").Assert(t, icmd.Success)
		a.Exec("hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		for _, p := range []string{"default", "work"} {
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if r := a.Exec("hermes-s6", "probe", p); r.ExitCode != 0 {
					return poll.Continue("%s not serving in A yet: %s", p, r.Combined())
				}
				return poll.Success()
			}, waitOpts...)
		}
		assert.Check(t, is.Equal(lockHolder(a, "/opt/data"), hostA))
		assert.Check(t, is.Equal(lockHolder(a, "/opt/data/profiles/work"), hostA))

		// B on the same volume: the reconciler registers and starts both
		// slots (their desired state is running), and neither starts a
		// gateway; each slot says who holds its lock.
		b := Start(t, image, Flags("-v", vol+":/opt/data"), Cmd("gateway", "run"))
		for _, p := range profiles {
			poll.WaitOn(t, b.LogContains("is held by container "+hostA+" (gateway pid "), waitOpts...)
			poll.WaitOn(t, b.SlotIs("gateway-"+p, "up (waiting for the lock)", isUp), waitOpts...)
		}
		poll.WaitOn(t, b.LogContains("not starting a second gateway for profile work"), waitOpts...)
		oneGatewayEach(t, profiles, a, b)
		for _, p := range profiles {
			assert.Check(t, is.Len(agentGateways(a, p), 1), "A keeps serving %s:\n%s", p, procTree(a.Procs()))
			assert.Check(t, is.Len(agentGateways(b, p), 0), "B runs no gateway for %s:\n%s", p, procTree(b.Procs()))
		}
		// B's boot kept A's pid files, and says where the gateways run;
		// A stays healthy, B is not (it serves nothing).
		a.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})
		b.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{ExitCode: 1, Err: "runs in another container sharing the volume: container " + hostA})
		b.Exec("hermes", "-p", "work", "gateway", "status").Assert(t, icmd.Expected{Out: "not serving here: the gateway of profile work runs in another container"})
		assert.Check(t, b.Exec("hermes-s6", "probe", "default").ExitCode != 0, "B's slot is not ready")
		assert.Check(t, is.Contains(b.Logs(), "logging to docker logs only"), "B's loggers leave A's log directories alone")
		assert.Check(t, !strings.Contains(b.Logs(), "s6-log: fatal"), "no logger dies on A's log directory lock")

		// A is removed: B takes over each profile within the backoff (≤ 30 s).
		removed := time.Now()
		icmd.RunCommand("docker", "rm", "-f", a.Name).Assert(t, icmd.Success)
		takeover := []poll.SettingOp{poll.WithTimeout(90 * time.Second), poll.WithDelay(200 * time.Millisecond)}
		hostB := b.Inspect("{{.Config.Hostname}}")
		for _, p := range profiles {
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if r := b.Exec("hermes-s6", "probe", p); r.ExitCode != 0 {
					return poll.Continue("%s not serving in B yet: %s", p, strings.TrimSpace(r.Combined()))
				}
				return poll.Success()
			}, takeover...)
			assert.Check(t, is.Len(agentGateways(b, p), 1), "B serves %s", p)
		}
		t.Logf("B serves both profiles %s after docker rm -f of A", time.Since(removed).Round(100*time.Millisecond))
		assert.Check(t, is.Equal(lockHolder(b, "/opt/data"), hostB))
		assert.Check(t, is.Equal(lockHolder(b, "/opt/data/profiles/work"), hostB))
		assert.Check(t, is.Contains(b.Logs(), "took the gateway lock /opt/data/.hermes-s6.lock after"))
		b.Exec("hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})

		// C waits on B; `docker stop` of C while it waits is prompt.
		c := Start(t, image, Flags("-v", vol+":/opt/data"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.LogContains("is held by container "+hostB), waitOpts...)
		oneGatewayEach(t, profiles, b, c)
		start := time.Now()
		icmd.RunCommand("docker", "stop", "-t", "20", c.Name).Assert(t, icmd.Success)
		took := time.Since(start)
		t.Logf("docker stop of a waiting container took %s", took)
		assert.Check(t, took < 20*time.Second, "stopped without the engine's SIGKILL (took %s)", took)
		assert.Check(t, is.Equal(c.Inspect("{{.State.ExitCode}}"), "0"))
		assert.Check(t, is.Len(agentGateways(b, "default"), 1), "B still serves")
	})
}
