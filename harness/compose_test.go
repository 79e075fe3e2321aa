package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// composeProject runs `docker compose` on deploy/compose/compose.yaml under
// its own project name, with the image under test and a random host port.
type composeProject struct {
	t    testing.TB
	name string
	env  []string
}

func newComposeProject(t *testing.T, image string) *composeProject {
	t.Helper()
	if r := icmd.RunCommand("docker", "compose", "version"); r.ExitCode != 0 {
		t.Skip("harness: `docker compose version` failed (Docker Compose v2 is a CLI plugin; .ci/provision builds it): " + strings.TrimSpace(r.Combined()))
	}
	p := &composeProject{t: t, name: uniqueName(t)}
	p.env = append(os.Environ(), "HERMES_IMAGE="+image, "HERMES_API_PORT=0")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker compose logs:\n%s", dockertest.Tail(p.run("logs", "--no-color").Combined(), 80))
		}
		p.run("down", "-v", "--remove-orphans")
	})
	return p
}

func (p *composeProject) run(args ...string) *icmd.Result {
	file := filepath.Join(dockertest.RepoRoot(), "deploy", "compose", "compose.yaml")
	cmd := icmd.Command("docker", append([]string{"compose", "-p", p.name, "-f", file}, args...)...)
	return icmd.RunCmd(cmd, icmd.WithEnv(p.env...))
}

// exec runs a command in the hermes service (as the service's user, 10000).
func (p *composeProject) exec(args ...string) *icmd.Result {
	return p.run(append([]string{"exec", "-T", "hermes"}, args...)...)
}

// container is the hermes service's container, with its published API port,
// for the harness's slot and health helpers.
func (p *composeProject) container() *Container {
	p.t.Helper()
	r := p.run("ps", "-q", "hermes")
	r.Assert(p.t, icmd.Success)
	id := strings.TrimSpace(r.Stdout())
	assert.Assert(p.t, id != "", "no container for service hermes")
	r = p.run("port", "hermes", "8642")
	r.Assert(p.t, icmd.Success)
	line := strings.TrimSpace(r.Stdout())
	hp, err := strconv.Atoi(line[strings.LastIndex(line, ":")+1:])
	assert.NilError(p.t, err, "docker compose port: %q", line)
	return &Container{t: p.t, Name: id, ports: map[int]int{8642: hp}}
}

// serviceHealthy polls until `hermes healthcheck` passes in the service.
func (p *composeProject) serviceHealthy(what string) poll.Check {
	return func(poll.LogT) poll.Result {
		r := p.exec("hermes", "healthcheck")
		if r.ExitCode == 0 {
			return poll.Success()
		}
		return poll.Continue("%s: hermes healthcheck: exit %d: %s", what, r.ExitCode, strings.TrimSpace(r.Combined()))
	}
}

// slotIs polls a slot's s6-svstat in the service, as the service's user:
// with no capabilities, root cannot read the supervise directories that
// uid 10000 owns (Container.Slot execs as root).
func (p *composeProject) slotIs(name, what string, want func(Slot) bool) poll.Check {
	return func(poll.LogT) poll.Result {
		r := p.exec(dockertest.SlotArgv(name)...)
		s := dockertest.ParseSlot(r)
		if want(s) {
			return poll.Success()
		}
		return poll.Continue("%s: want %s, have %s (%s)", name, what, s, strings.TrimSpace(r.Combined()))
	}
}

// dockerHealthy polls until the engine's health status (the image's own
// HEALTHCHECK, timing from compose.yaml) is healthy.
func dockerHealthy(c *Container) poll.Check {
	return func(poll.LogT) poll.Result {
		s := c.Inspect("{{.State.Health.Status}}")
		if s == "healthy" {
			return poll.Success()
		}
		return poll.Continue("health status %q", s)
	}
}

// TestCompose: deploy/compose/compose.yaml as a user runs it. Under the
// restricted runtime it sets (uid 10000, no capabilities, read-only root),
// the gateway becomes healthy and answers on the published port; a profile
// created and started with `docker compose exec` is running again after
// `down` and `up -d` (the named volume keeps the desired state).
func TestCompose(t *testing.T) {
	t.Parallel()
	image := testImage(t)
	p := newComposeProject(t, image)

	p.run("up", "-d").Assert(t, icmd.Success)
	c := p.container()
	poll.WaitOn(t, p.serviceHealthy("after up"), waitOpts...)
	poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
	poll.WaitOn(t, dockerHealthy(c), waitOpts...)
	assert.Equal(t, c.Inspect("{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}"),
		"10000:10000 true [ALL] [no-new-privileges:true]")
	// The image's HEALTHCHECK command, inherited (compose.yaml sets no test),
	// at compose.yaml's interval.
	imageTest := strings.TrimSpace(icmd.RunCommand("docker", "image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", image).Stdout())
	assert.Equal(t, c.Inspect("{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}}"), imageTest+" 10s")

	p.exec("hermes", "profile", "create", "work").Assert(t, icmd.Success)
	p.exec("sh", "-c", "echo API_SERVER_PORT=8750 >> /opt/data/profiles/work/.env").Assert(t, icmd.Success)
	p.exec("hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
	poll.WaitOn(t, p.slotIs("gateway-work", "up", isUp), waitOpts...)
	poll.WaitOn(t, p.serviceHealthy("with work"), waitOpts...)

	// down without -v keeps the volume, and with it the desired state.
	p.run("down").Assert(t, icmd.Success)
	icmd.RunCommand("docker", "volume", "inspect", p.name+"_hermes-data").Assert(t, icmd.Success)
	assert.Equal(t, strings.TrimSpace(p.run("ps", "-q", "-a").Stdout()), "", "down removed the containers")

	p.run("up", "-d").Assert(t, icmd.Success)
	c = p.container()
	poll.WaitOn(t, p.slotIs("gateway-default", "up after down/up", isUp), waitOpts...)
	poll.WaitOn(t, p.slotIs("gateway-work", "up after down/up", isUp), waitOpts...)
	poll.WaitOn(t, p.serviceHealthy("after down/up"), waitOpts...)
	poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)
	boot := p.exec("cat", "/opt/data/logs/container-boot.log").Stdout()
	assert.Check(t, strings.Contains(boot, "work gateway-work: started (desired state running)"), "boot log:\n%s", boot)
}
