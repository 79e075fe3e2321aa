package harness

import (
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// TestScanDirectoryLayout names what each s6 source puts in /run/service,
// as real s6-overlay lays it (s6-rc-init): s6-rc's longruns as symlinks to
// their live directories, s6-overlay's own services, and the Hermes slots as
// plain directories of their own with a logger in log/. The debian stage
// layer must show the same, or code that reads the scan directory is tested
// against something users never run.
func TestScanDirectoryLayout(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Env("HERMES_DASHBOARD=1"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.SlotIs("dashboard", "up", isUp), waitOpts...)

		kind := func(p string) string {
			return strings.TrimSpace(c.Exec("stat", "-c", "%F", p).Stdout())
		}
		// s6-rc's longruns: symlinks into s6-rc's live directory.
		for _, svc := range []string{"main-hermes", "hermes-admin"} {
			p := "/run/service/" + svc
			assert.Check(t, is.Equal(kind(p), "symbolic link"), p)
			target := strings.TrimSpace(c.Exec("readlink", "-f", p).Stdout())
			assert.Check(t, strings.HasPrefix(target, "/run/s6-rc"), "%s -> %s: an s6-rc live directory", p, target)
			assert.Check(t, c.Exec("test", "-e", p+"/hermes-slot").ExitCode != 0, "%s is not a Hermes slot", p)
		}
		// s6-overlay's own services are there too, and are not slots.
		for _, svc := range []string{"s6rc-oneshot-runner", "s6rc-fdholder"} {
			assert.Check(t, c.Exec("test", "-d", "/run/service/"+svc).ExitCode == 0, "/run/service/%s", svc)
		}
		// The Hermes slots: plain directories, root's, with their identity
		// and their logger as log/, as rendered at build time.
		for slot, id := range map[string]string{"gateway-default": "gateway default\n", "dashboard": "dashboard\n"} {
			p := "/run/service/" + slot
			assert.Check(t, is.Equal(kind(p), "directory"), p)
			assert.Check(t, is.Equal(c.Exec("cat", p+"/hermes-slot").Stdout(), id))
			assert.Check(t, is.Equal(kind(p+"/log"), "directory"), p+"/log")
			c.Exec("cmp", p+"/run", "/etc/hermes-s6/slots/"+slot+"/run").Assert(t, icmd.Success)
			c.Exec("cmp", p+"/log/run", "/etc/hermes-s6/slots/"+slot+"/log/run").Assert(t, icmd.Success)
			s := c.Slot(slot + "/log")
			assert.Check(t, isUp(s), "%s's logger: %s", slot, s)
		}
		// Only the gateways are listed as gateways: no logger, no s6 service.
		out := c.Exec("hermes", "gateway", "status", "--all").Stdout()
		var listed []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, " ") {
				listed = append(listed, strings.SplitN(l, ":", 2)[0])
			}
		}
		assert.Check(t, is.DeepEqual(listed, []string{"gateway-default"}), out)
		c.Exec("hermes", "profile", "create", "default-log").Assert(t, icmd.Success)
		assert.Check(t, is.Equal(c.Exec("cat", "/run/service/gateway-default-log/hermes-slot").Stdout(), "gateway default-log\n"),
			"a profile named like a logger gets a slot of its own")

		// Both slots write their log files (docs/docker.md): what each
		// service prints at start is in its file.
		for name, line := range map[string]string{"default": "Hermes Gateway Starting", "dashboard": "HERMES_DASHBOARD_READY"} {
			f := "/opt/data/logs/gateways/" + name + "/current"
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if r := c.Exec("grep", "-q", line, f); r.ExitCode == 0 {
					return poll.Success()
				}
				return poll.Continue("%s has no %q line yet", f, line)
			}, waitOpts...)
		}
		// The watcher reports only slots.
		for _, internal := range []string{"s6rc-fdholder", "s6rc-oneshot-runner", "main-hermes", "hermes-admin", "-log "} {
			assert.Check(t, !strings.Contains(c.Logs(), "hermes-watch: "+internal), "watcher reported %s", internal)
		}
	})
}

// TestNotPID1FallsBackToTheForeground: under `docker run --init` s6 cannot
// be PID 1. The image says so in one line, runs its setup and runs the CMD
// in the foreground: one gateway, its exit code the container's.
func TestNotPID1FallsBackToTheForeground(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Flags("--init"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		procs := c.Procs()
		assert.Check(t, is.Len(procsMatching(procs, gatewayRE), 1), "exactly one gateway:\n%s", procTree(procs))
		assert.Check(t, is.Len(procsMatching(procs, `s6-svscan|s6-supervise`), 0), "no supervision tree:\n%s", procTree(procs))
		assert.Check(t, is.Equal(gatewayUID(t, c), 10000), "the gateway still runs as hermes")
		logs := c.Logs()
		assert.Check(t, is.Equal(strings.Count(logs, "hermes-init: warning: not PID 1"), 1), logs)
		assert.Check(t, !strings.Contains(logs, dockertest.BreadcrumbMark), "no redirect")
		assert.Check(t, !strings.Contains(logs, "address already in use"), logs)
		owner := strings.TrimSpace(c.Exec("stat", "-c", "%U", "/opt/data/logs/gateways").Stdout())
		assert.Check(t, is.Equal(owner, "hermes"), "the setup step ran")

		// The container's exit code is the gateway's.
		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			if c.Running() {
				return poll.Continue("container still running after the gateway crashed")
			}
			return poll.Success()
		}, waitOpts...)
		assert.Check(t, is.Equal(c.Inspect("{{.State.ExitCode}}"), "70"))

		r := RunToExit(t, image, Flags("--init"), Cmd("sh", "-c", "exit 7"))
		assert.Check(t, is.Equal(r.ExitCode, 7), r.Combined())
	})
}
