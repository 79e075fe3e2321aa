package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// gatewayUID is the uid of the container's one gateway process. It waits
// until there is one: a redirected `gateway run` front is still a gateway
// command line for the moment between the supervised gateway answering and
// the front's exec of `sleep infinity`.
func gatewayUID(t *testing.T, c *Container) int {
	t.Helper()
	var gws []Proc
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		procs := c.Procs()
		if gws = procsMatching(procs, gatewayRE); len(gws) == 1 {
			return poll.Success()
		}
		return poll.Continue("want one gateway process:\n%s", procTree(procs))
	}, waitOpts...)
	return gws[0].UID
}

func TestGatewayRunsUnprivileged(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		assert.Check(t, is.Equal(gatewayUID(t, c), 10000))
		r := c.ExecAs("hermes", "sh", "-c", "touch /opt/hermes/x || touch /opt/hermes/bin/x")
		assert.Check(t, r.ExitCode != 0, "/opt/hermes must not be writable by hermes")
		c.ExecAs("hermes", "touch", "/opt/data/ok").Assert(t, icmd.Success)
	})
}

func TestUIDGIDRemap(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Env("PUID=2345", "PGID=2346"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		assert.Check(t, is.Equal(gatewayUID(t, c), 2345))
		c.Exec("id", "hermes").Assert(t, icmd.Expected{Out: "uid=2345(hermes) gid=2346(hermes)"})
		owner := strings.TrimSpace(c.Exec("stat", "-c", "%u:%g", "/opt/data/logs/gateways").Stdout())
		assert.Check(t, is.Equal(owner, "2345:2346"))
	})
}

func TestBadRemapValueIgnoredWithMessage(t *testing.T) {
	t.Parallel()
	c := Start(t, testImage(t), Publish(8642), Env("HERMES_UID=0", "PGID=abc"), Cmd("gateway", "run"))
	poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
	assert.Check(t, is.Equal(gatewayUID(t, c), 10000))
	logs := c.Logs()
	assert.Check(t, is.Contains(logs, `ignoring HERMES_UID: "0" is not a valid id`))
	assert.Check(t, is.Contains(logs, `ignoring PGID: "abc" is not a valid id`))
}

func TestOtherUserRefused(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		r := RunToExit(t, image, Flags("--user", "1000"), Cmd("gateway", "run"))
		assert.Check(t, r.ExitCode != 0, "--user 1000 must be refused")
		assert.Check(t, is.Contains(r.Combined(), "refusing to run as uid 1000"))
		assert.Check(t, is.Contains(r.Combined(), "--user 10000:10000"))
	})
}

func TestRunAsHermesUser(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Flags("--user", "10000:10000"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		poll.WaitOn(t, c.LogContains(dockertest.BreadcrumbMark), waitOpts...)
		assert.Check(t, is.Equal(gatewayUID(t, c), 10000))
	})
}

func TestReadOnlyRoot(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Flags("--read-only", "--tmpfs", "/run:exec", "--tmpfs", "/tmp"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		h, _ := c.GetHealth(8642)
		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, c.Healthy(8642, func(n Health) bool { return n.Pid != h.Pid }), waitOpts...)
	})
}

func TestHostOwnedFilesOnVolumeLeftAlone(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		vol := t.TempDir()
		t.Cleanup(func() { icmd.RunCommand("rm", "-rf", vol) })
		assert.NilError(t, os.WriteFile(filepath.Join(vol, "notes.txt"), []byte("mine"), 0o600))
		assert.NilError(t, os.Chown(filepath.Join(vol, "notes.txt"), 4321, 4321))
		assert.NilError(t, os.MkdirAll(filepath.Join(vol, "data"), 0o700))
		assert.NilError(t, os.Chown(filepath.Join(vol, "data"), 4321, 4321))
		// A symlink in the allowlist pointing at a host-owned file is not followed.
		assert.NilError(t, os.Symlink("/etc/hostname", filepath.Join(vol, "gateway.pid")))

		c := Start(t, image, Publish(8642), Flags("-v", vol+":/opt/data"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		for _, p := range []string{"notes.txt", "data"} {
			st, err := os.Stat(filepath.Join(vol, p))
			assert.NilError(t, err)
			assert.Check(t, is.Equal(ownerOf(st), "4321:4321"), "%s must keep its owner", p)
		}
		st, err := os.Stat(vol)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(ownerOf(st), "10000:10000"), "the volume root is given to hermes")
		owner := strings.TrimSpace(c.Exec("stat", "-c", "%u", "/etc/hostname").Stdout())
		assert.Check(t, is.Equal(owner, "0"), "a symlink's target must never be chowned")
	})
}

func TestPlainCommandsExitCodesAndEnvironment(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		RunToExit(t, image, Cmd("true")).Assert(t, icmd.Success)
		RunToExit(t, image, Cmd("sh", "-c", "exit 7")).Assert(t, icmd.Expected{ExitCode: 7})
		RunToExit(t, image, Env("HERMES_PROBE=it's here"), Cmd("sh", "-c", `echo "probe=[$HERMES_PROBE] user=$(id -un)"`)).
			Assert(t, icmd.Expected{Out: "probe=[it's here] user=hermes"})
		RunToExit(t, image, Flags("-w", "/tmp"), Cmd("pwd")).Assert(t, icmd.Expected{Out: "/tmp"})
	})
}

func TestEnvironmentReachesServices(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642), Env("HERMES_PROBE=svc value", "HERMES_STANDIN_ENV_DUMP=/opt/data/env.txt"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		env := c.Exec("cat", "/opt/data/env.txt").Stdout()
		assert.Check(t, is.Contains(env, "HERMES_PROBE=svc value\n"))
		assert.Check(t, is.Contains(env, "HERMES_S6_SUPERVISED_CHILD=1\n"))
		assert.Check(t, is.Contains(env, "\nHOME=/opt/data\n"), "the agent's HOME is HERMES_HOME, as upstream's run scripts set it")
	})
}

func TestZombiesAreReaped(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		// The subshell exits at once, orphaning its `sleep 0.2`, which PID 1 must reap.
		c := Start(t, image, Cmd("sh", "-c", "(sleep 0.2 &) ; (sleep 0.3 &) ; exec sleep 1000"))
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			procs := c.Procs()
			if len(procsMatching(procs, `^sleep 0\.[23]$`)) > 0 {
				return poll.Continue("orphans still running:\n%s", procTree(procs))
			}
			for _, p := range procs {
				if p.State == "Z" {
					return poll.Continue("zombie left:\n%s", procTree(procs))
				}
			}
			return poll.Success()
		}, waitOpts...)
	})
}

// TestKeepEnvKeepsTheEnvironment: with S6_KEEP_ENV=1 s6-overlay passes the
// whole environment on (stage0: no container_environment dump); the debian
// layer does the same. The CMD and the supervised gateway both see it.
func TestKeepEnvKeepsTheEnvironment(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		RunToExit(t, image, Env("S6_KEEP_ENV=1", "HERMES_PROBE=kept"), Cmd("sh", "-c", `echo "probe=$HERMES_PROBE"`)).
			Assert(t, icmd.Expected{Out: "probe=kept"})
		c := Start(t, image, Env("S6_KEEP_ENV=1", "HERMES_PROBE=kept", "HERMES_STANDIN_ENV_DUMP=/opt/data/env.txt"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			env := c.Exec("cat", "/opt/data/env.txt").Stdout()
			if strings.Contains(env, "HERMES_PROBE=kept\n") {
				return poll.Success()
			}
			return poll.Continue("the gateway's environment: %q", env)
		}, waitOpts...)
	})
}

// TestRestrictedRuntime: what Kubernetes' "restricted" Pod Security Standard
// leaves a container (non-root uid 10000, no capabilities, no_new_privs, a
// read-only root, writable /run and /tmp only), on both s6 sources: the
// supervised gateway serves, profiles work, a crash is restarted, and a
// remap that needs root says so and carries on.
func TestRestrictedRuntime(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Publish(8642),
			Flags("--user", "10000:10000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
				"--read-only", "--tmpfs", "/run:exec", "--tmpfs", "/tmp"),
			Env("S6_READ_ONLY_ROOT=1", "S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES=1", "HERMES_UID=2000"),
			Cmd("gateway", "run"))
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
		assert.Check(t, is.Equal(gatewayUID(t, c), 10000))
		assert.Check(t, is.Contains(c.Logs(), "need root to remap the hermes user; the container runs as uid 10000"))
		c.ExecAs("10000", "hermes", "healthcheck").Assert(t, icmd.Expected{Out: "healthy"})

		c.ExecAs("10000", "hermes", "profile", "create", "work").Assert(t, icmd.Success)
		c.ExecAs("10000", "sh", "-c", "echo API_SERVER_PORT=8740 >> /opt/data/profiles/work/.env").Assert(t, icmd.Success)
		c.ExecAs("10000", "hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-work", "up", isUp), waitOpts...)

		h, err := c.GetHealth(8642)
		assert.NilError(t, err)
		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, c.Healthy(8642, func(n Health) bool { return n.Pid != h.Pid }), waitOpts...)

		start := time.Now()
		icmd.RunCommand("docker", "stop", "-t", "10", c.Name).Assert(t, icmd.Success)
		assert.Check(t, time.Since(start) < 10*time.Second, "stopped within the grace period: %s", time.Since(start))
	})
}
