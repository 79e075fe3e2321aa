package harness

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// Podman runs the same image as Docker does. Podman 4.3 (Debian bookworm) on
// this kind of host needs runc and no default ulimits: .ci/provision writes
// /etc/containers/containers.conf.d/hermes-s6.conf for that. The image is
// copied from the Docker engine (`docker save | podman load`) once per run.
// The rootless subtest needs newuidmap (Debian's uidmap) and user namespaces;
// without them it skips with podman's own error.

var (
	podmanOnce   sync.Once
	podmanReason string // skip reason: podman not usable
	podmanImage  string
	podmanErr    string // fatal: podman usable, but the image did not load
)

// requirePodman skips when `podman info` fails (its error is the reason) and
// returns the test image as podman names it.
func requirePodman(t *testing.T) string {
	t.Helper()
	image := testImage(t)
	podmanOnce.Do(func() {
		if r := icmd.RunCommand("podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"); r.ExitCode != 0 {
			reason := strings.TrimSpace(r.Combined())
			if r.Error != nil && reason == "" {
				reason = r.Error.Error()
			}
			podmanReason = "podman info: " + reason
			return
		}
		podmanImage, podmanErr = podmanLoad(image, nil)
	})
	if podmanReason != "" {
		t.Skip(podmanReason)
	}
	if podmanErr != "" {
		t.Fatal(podmanErr)
	}
	return podmanImage
}

var loadedRe = regexp.MustCompile(`Loaded image(?:\(s\))?: (\S+)`)

// podmanLoad pipes `docker save image` into `podman load` (wrapped by
// prefix, e.g. to run it as another user) and returns the loaded name.
func podmanLoad(image string, prefix []string) (string, string) {
	save := exec.Command("docker", "save", image)
	args := append(append([]string{}, prefix...), "podman", "load")
	load := exec.Command(args[0], args[1:]...)
	pipe, err := save.StdoutPipe()
	if err != nil {
		return "", err.Error()
	}
	load.Stdin = pipe
	var saveErr strings.Builder
	save.Stderr = &saveErr
	if err := save.Start(); err != nil {
		return "", "docker save: " + err.Error()
	}
	out, lerr := load.CombinedOutput()
	serr := save.Wait()
	if serr != nil {
		return "", fmt.Sprintf("docker save %s: %v: %s", image, serr, saveErr.String())
	}
	if lerr != nil {
		return "", fmt.Sprintf("podman load: %v: %s", lerr, dockertest.Tail(string(out), 20))
	}
	m := loadedRe.FindStringSubmatch(string(out))
	if m == nil {
		return "", "podman load: no loaded image in its output: " + dockertest.Tail(string(out), 20)
	}
	return m[1], ""
}

// podmanCtr is one podman container under test, removed at cleanup. prefix
// runs podman as another user (rootless).
type podmanCtr struct {
	Name   string
	prefix []string
}

func (c *podmanCtr) podman(args ...string) *icmd.Result {
	all := append(append([]string{}, c.prefix...), append([]string{"podman"}, args...)...)
	return icmd.RunCmd(icmd.Command(all[0], all[1:]...), icmd.WithTimeout(2*time.Minute))
}

func (c *podmanCtr) execAs(user string, args ...string) *icmd.Result {
	return c.podman(append([]string{"exec", "-u", user, c.Name}, args...)...)
}

// startPodman runs `podman run -d --name NAME flags… image args…`.
func startPodman(t *testing.T, prefix []string, image string, flags []string, args ...string) *podmanCtr {
	t.Helper()
	c := &podmanCtr{Name: uniqueName(t), prefix: prefix}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("podman logs %s:\n%s", c.Name, dockertest.Tail(c.podman("logs", c.Name).Combined(), 80))
		}
		c.podman("rm", "-f", c.Name)
	})
	run := append([]string{"run", "-d", "--name", c.Name}, flags...)
	run = append(run, image)
	c.podman(append(run, args...)...).Assert(t, icmd.Success)
	return c
}

func (c *podmanCtr) slot(name string) Slot {
	return dockertest.ParseSlot(c.execAs("root", dockertest.SlotArgv(name)...))
}

func (c *podmanCtr) slotIs(name, what string, want func(Slot) bool) poll.Check {
	return func(poll.LogT) poll.Result {
		if st := strings.TrimSpace(c.podman("inspect", "-f", "{{.State.Running}}", c.Name).Stdout()); st != "true" {
			return poll.Error(fmt.Errorf("container %s is not running (%q) while waiting for %s %s", c.Name, st, name, what))
		}
		if s := c.slot(name); want(s) {
			return poll.Success()
		} else {
			return poll.Continue("%s: want %s, have %s", name, what, s)
		}
	}
}

func (c *podmanCtr) logContains(s string) poll.Check {
	return func(poll.LogT) poll.Result {
		if strings.Contains(c.podman("logs", c.Name).Combined(), s) {
			return poll.Success()
		}
		return poll.Continue("podman logs: no %q yet", s)
	}
}

func (c *podmanCtr) healthcheckPasses() poll.Check {
	return func(poll.LogT) poll.Result {
		r := c.execAs("root", "hermes", "healthcheck")
		if r.ExitCode == 0 {
			return poll.Success()
		}
		return poll.Continue("hermes healthcheck: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Combined()))
	}
}

// supervisedGateway is (b): `gateway run` redirects to the supervised slot,
// which comes up and passes the image's HEALTHCHECK command.
func supervisedGateway(t *testing.T, prefix []string, image string, flags ...string) *podmanCtr {
	t.Helper()
	c := startPodman(t, prefix, image, flags, "gateway", "run")
	poll.WaitOn(t, c.logContains(dockertest.BreadcrumbMark), waitOpts...)
	poll.WaitOn(t, c.slotIs("gateway-default", "up", isUp), waitOpts...)
	r := c.execAs("root", "/command/s6-svstat", "/run/service/gateway-default")
	assert.Check(t, is.Contains(r.Stdout(), "up"), "s6-svstat: %s", r.Combined())
	poll.WaitOn(t, c.healthcheckPasses(), waitOpts...)
	return c
}

func TestPodmanRunsTheImage(t *testing.T) {
	t.Parallel()
	image := requirePodman(t)

	t.Run("exit code propagates", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t)
		t.Cleanup(func() { icmd.RunCommand("podman", "rm", "-f", name) })
		r := icmd.RunCmd(icmd.Command("podman", "run", "--rm", "--name", name, image, "sh", "-c", "exit 7"),
			icmd.WithTimeout(2*time.Minute))
		r.Assert(t, icmd.Expected{ExitCode: 7})
	})

	t.Run("supervised gateway, restart, profiles, stop", func(t *testing.T) {
		t.Parallel()
		c := supervisedGateway(t, nil, image)

		// (c) crash → restart: s6 brings a new process up.
		old := c.slot("gateway-default").Pid
		assert.Assert(t, old > 0)
		c.execAs("root", "sh", "-c", "kill -KILL "+strconv.Itoa(old)).Assert(t, icmd.Success)
		poll.WaitOn(t, c.slotIs("gateway-default", "restarted", func(s Slot) bool { return isUp(s) && s.Pid != old }), waitOpts...)

		// (d) a profile gateway, created and started as hermes.
		c.execAs("hermes", "hermes", "profile", "create", "work").Assert(t, icmd.Expected{Out: "slot gateway-work, down"})
		c.execAs("hermes", "sh", "-c", "echo API_SERVER_PORT=8770 >> /opt/data/profiles/work/.env").Assert(t, icmd.Success)
		c.execAs("hermes", "hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.slotIs("gateway-work", "up", isUp), waitOpts...)

		// (e) podman stop: clean and well within the grace period.
		start := time.Now()
		c.podman("stop", "-t", "10", c.Name).Assert(t, icmd.Success)
		took := time.Since(start)
		t.Logf("podman stop took %s", took.Round(time.Millisecond))
		assert.Check(t, took < 10*time.Second, "podman stop took %s", took)
		code := strings.TrimSpace(c.podman("inspect", "-f", "{{.State.ExitCode}}", c.Name).Stdout())
		assert.Check(t, is.Equal(code, "0"), "exit code after podman stop")
	})

	t.Run("rootless", func(t *testing.T) {
		t.Parallel()
		prefix := rootlessUser(t)
		img, errs := podmanLoad(testImage(t), prefix)
		if errs != "" {
			t.Skip("rootless podman load: " + errs)
		}
		// --network none: rootless networking (slirp4netns) needs
		// /dev/net/tun, root-only on this kind of host; (b) needs no network.
		supervisedGateway(t, prefix, img, "--network", "none")
	})
}

// rootlessUser creates a throwaway user (removed at cleanup) and returns the
// command prefix that runs podman as it, or skips with the reason it cannot.
func rootlessUser(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("rootless: needs root to create a throwaway user")
	}
	if r := icmd.RunCommand("unshare", "--user", "--map-root-user", "true"); r.ExitCode != 0 {
		t.Skip("rootless: user namespaces: " + strings.TrimSpace(r.Combined()))
	}
	user := fmt.Sprintf("hpod%d", os.Getpid()%100000)
	icmd.RunCommand("useradd", "--create-home", "--shell", "/bin/sh", user).Assert(t, icmd.Success)
	uid := strings.TrimSpace(icmd.RunCommand("id", "-u", user).Stdout())
	runtimeDir := "/tmp/hermes-podman-" + uid
	prefix := []string{"runuser", "-u", user, "--", "env", "XDG_RUNTIME_DIR=" + runtimeDir, "HOME=/home/" + user}
	t.Cleanup(func() {
		icmd.RunCommand(prefix[0], append(prefix[1:], "podman", "system", "reset", "-f")...)
		os.RemoveAll(runtimeDir)
		icmd.RunCommand("userdel", "--remove", user)
	})
	assert.NilError(t, os.MkdirAll(runtimeDir, 0o700))
	icmd.RunCommand("chown", user, runtimeDir).Assert(t, icmd.Success)
	r := icmd.RunCommand(prefix[0], append(prefix[1:], "podman", "info")...)
	if r.ExitCode != 0 {
		t.Skip("rootless podman info: " + dockertest.Tail(strings.TrimSpace(r.Combined()), 5))
	}
	return prefix
}
