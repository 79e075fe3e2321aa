package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// Generous: this runs on a 2-core machine with many containers in parallel.
var waitOpts = []poll.SettingOp{poll.WithTimeout(60 * time.Second), poll.WithDelay(50 * time.Millisecond)}

var (
	engineOnce   sync.Once
	engineReason string
	imageOnce    sync.Once
	imageName    string
	imageErr     string
)

// requireEngine skips the test when no Docker engine answers, or with -short.
func requireEngine(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("harness: skipped with -short (it runs the real image in a Docker engine)")
	}
	engineOnce.Do(func() {
		if p := dockertest.EngineProblem(); p != "" {
			engineReason = "harness: " + p
		}
	})
	if engineReason != "" {
		t.Skip(engineReason)
	}
}

// testImage is the image under test: $HERMES_TEST_IMAGE, or the bake test
// target built once per run.
func testImage(t testing.TB) string {
	t.Helper()
	requireEngine(t)
	imageOnce.Do(func() {
		if img := os.Getenv("HERMES_TEST_IMAGE"); img != "" {
			imageName = img
			return
		}
		cmd := icmd.Command("docker", "buildx", "bake", "test")
		r := icmd.RunCmd(cmd, icmd.Dir(dockertest.RepoRoot()))
		if r.ExitCode != 0 {
			imageErr = "building the test image with `docker buildx bake test` failed:\n" + dockertest.Tail(r.Combined(), 40)
			return
		}
		imageName = "hermes-s6:test"
	})
	if imageErr != "" {
		t.Fatal(imageErr)
	}
	return imageName
}

// Container is one running container under test, removed at cleanup.
type Container struct {
	t     testing.TB
	Name  string
	ports map[int]int
}

type runOpts struct {
	flags []string
	args  []string
	ports []int
}

// RunOpt configures docker run.
type RunOpt func(*runOpts)

// Env adds -e KEY=VALUE.
func Env(kv ...string) RunOpt {
	return func(o *runOpts) {
		for _, e := range kv {
			o.flags = append(o.flags, "-e", e)
		}
	}
}

// Flags adds raw docker run flags.
func Flags(f ...string) RunOpt { return func(o *runOpts) { o.flags = append(o.flags, f...) } }

// Publish publishes container ports on 127.0.0.1 (random host ports). The
// agent's API server binds 127.0.0.1 unless API_SERVER_HOST says otherwise,
// so, as a user publishing it must, it sets API_SERVER_HOST=0.0.0.0.
func Publish(ports ...int) RunOpt {
	return func(o *runOpts) {
		o.ports = append(o.ports, ports...)
		o.flags = append(o.flags, "-e", "API_SERVER_HOST=0.0.0.0")
	}
}

// Cmd sets the container command.
func Cmd(args ...string) RunOpt { return func(o *runOpts) { o.args = args } }

func uniqueName(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	n := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(n) > 40 {
		n = n[:40]
	}
	return "hermes-test-" + strings.Trim(n, "-") + "-" + hex.EncodeToString(b)
}

// Start runs a detached container, always removed when the test ends; its
// logs are attached to the test output when the test fails.
func Start(t testing.TB, image string, opts ...RunOpt) *Container {
	t.Helper()
	o := runOpts{}
	for _, f := range opts {
		f(&o)
	}
	c := &Container{t: t, Name: uniqueName(t), ports: map[int]int{}}
	args := []string{"run", "-d", "--name", c.Name, "--label", "hermes-s6-test=1"}
	for _, p := range o.ports {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1::%d", p))
	}
	args = append(args, o.flags...)
	args = append(args, image)
	args = append(args, o.args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker logs %s:\n%s", c.Name, dockertest.Tail(icmd.RunCommand("docker", "logs", c.Name).Combined(), 80))
		}
		icmd.RunCommand("docker", "rm", "-f", "-v", c.Name)
	})
	r := icmd.RunCommand("docker", args...)
	r.Assert(t, icmd.Success)
	for _, p := range o.ports {
		c.ports[p] = hostPort(t, c.Name, p)
	}
	return c
}

// hostPort is the 127.0.0.1 port that container port p is published on.
func hostPort(t testing.TB, name string, p int) int {
	t.Helper()
	out := icmd.RunCommand("docker", "port", name, fmt.Sprintf("%d/tcp", p))
	out.Assert(t, icmd.Success)
	line := strings.TrimSpace(strings.Split(out.Stdout(), "\n")[0])
	hp, err := strconv.Atoi(line[strings.LastIndex(line, ":")+1:])
	assert.NilError(t, err, "docker port: %q", line)
	return hp
}

// RunToExit runs a container to completion and returns its result.
func RunToExit(t testing.TB, image string, opts ...RunOpt) *icmd.Result {
	t.Helper()
	o := runOpts{}
	for _, f := range opts {
		f(&o)
	}
	name := uniqueName(t)
	t.Cleanup(func() { icmd.RunCommand("docker", "rm", "-f", "-v", name) })
	args := append([]string{"run", "--name", name}, o.flags...)
	args = append(args, image)
	args = append(args, o.args...)
	return icmd.RunCmd(icmd.Command("docker", args...), icmd.WithTimeout(2*time.Minute))
}

// Exec runs a command in the container as root.
func (c *Container) Exec(args ...string) *icmd.Result { return c.ExecAs("root", args...) }

// ExecAs runs a command in the container as user.
func (c *Container) ExecAs(user string, args ...string) *icmd.Result {
	return icmd.RunCommand("docker", append([]string{"exec", "-u", user, c.Name}, args...)...)
}

// Logs returns docker logs (stdout and stderr).
func (c *Container) Logs() string { return icmd.RunCommand("docker", "logs", c.Name).Combined() }

// Inspect returns a docker inspect field.
func (c *Container) Inspect(format string) string {
	return strings.TrimSpace(icmd.RunCommand("docker", "inspect", "-f", format, c.Name).Stdout())
}

// Running reports whether the container runs.
func (c *Container) Running() bool { return c.Inspect("{{.State.Running}}") == "true" }

// Slot is a slot's state in the container.
type Slot = dockertest.Slot

// Slot reads a slot's state with s6-svstat inside the container.
func (c *Container) Slot(name string) Slot {
	return dockertest.ParseSlot(c.Exec(dockertest.SlotArgv(name)...))
}

// SlotIs polls until the slot satisfies want.
func (c *Container) SlotIs(name, what string, want func(Slot) bool) poll.Check {
	return func(poll.LogT) poll.Result {
		if !c.Running() {
			return poll.Error(fmt.Errorf("container %s is no longer running while waiting for %s %s", c.Name, name, what))
		}
		s := c.Slot(name)
		if want(s) {
			return poll.Success()
		}
		return poll.Continue("%s: want %s, have %s", name, what, s)
	}
}

func isUp(s Slot) bool { return s.Up && s.WantUp && s.Pid > 0 }

// Proc is one process in the container.
type Proc struct {
	Pid, PPid, UID int
	State          string
	Args           string
}

// Procs lists the container's processes from /proc (the image has no ps).
func (c *Container) Procs() []Proc {
	script := `for d in /proc/[0-9]*; do s=$(cat "$d/stat" 2>/dev/null) || continue; u=$(grep '^Uid:' "$d/status" 2>/dev/null); a=$(tr '\000' ' ' < "$d/cmdline" 2>/dev/null); printf '%s\n%s\n%s\n' "$s" "$u" "$a"; done`
	out := c.Exec("sh", "-c", script).Stdout()
	lines := strings.Split(out, "\n")
	var procs []Proc
	for i := 0; i+2 < len(lines); i += 3 {
		stat := lines[i]
		close := strings.LastIndexByte(stat, ')')
		if close < 0 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(stat)[0])
		rest := strings.Fields(stat[close+1:])
		if len(rest) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(rest[1])
		uid := -1
		if f := strings.Fields(lines[i+1]); len(f) >= 2 {
			uid, _ = strconv.Atoi(f[1])
		}
		args := strings.TrimSpace(lines[i+2])
		if strings.HasPrefix(args, "sh -c for d in /proc") {
			continue // this listing itself
		}
		procs = append(procs, Proc{Pid: pid, PPid: ppid, UID: uid, State: rest[0], Args: args})
	}
	return procs
}

func procsMatching(procs []Proc, re string) []Proc {
	rx := regexp.MustCompile(re)
	var out []Proc
	for _, p := range procs {
		if rx.MatchString(p.Args) {
			out = append(out, p)
		}
	}
	return out
}

func procTree(procs []Proc) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "  pid=%d ppid=%d uid=%d %s %s\n", p.Pid, p.PPid, p.UID, p.State, p.Args)
	}
	return b.String()
}

// LogContains polls docker logs for s.
func (c *Container) LogContains(s string) poll.Check {
	return func(poll.LogT) poll.Result {
		if strings.Contains(c.Logs(), s) {
			return poll.Success()
		}
		return poll.Continue("docker logs do not contain %q yet", s)
	}
}

// URL is the host URL of a published container port.
func (c *Container) URL(port int, path string) string {
	hp, ok := c.ports[port]
	if !ok {
		c.t.Fatalf("port %d was not published", port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d%s", hp, path)
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// Health is the stand-in gateway's /health answer.
type Health struct {
	Status  string `json:"status"`
	Pid     int    `json:"pid"`
	Profile string `json:"profile"`
}

// GetHealth asks /health/detailed on a published port.
func (c *Container) GetHealth(port int) (Health, error) {
	resp, err := httpClient.Get(c.URL(port, "/health/detailed"))
	if err != nil {
		return Health{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return Health{}, fmt.Errorf("/health/detailed: %s", resp.Status)
	}
	var h Health
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// Healthy polls until /health answers with a pid that satisfies want.
func (c *Container) Healthy(port int, want func(Health) bool) poll.Check {
	return func(poll.LogT) poll.Result {
		h, err := c.GetHealth(port)
		if err != nil {
			return poll.Continue("%v", err)
		}
		if want != nil && !want(h) {
			return poll.Continue("/health answered %+v", h)
		}
		return poll.Success()
	}
}

// Get fetches a URL body.
func Get(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Post sends an empty POST.
func Post(url string) error {
	resp, err := httpClient.Post(url, "text/plain", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
