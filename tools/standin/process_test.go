package standin

// Tests that need a real process: signals, exit codes, --replace. They run
// the hermes-agent-standin binary, built once per test run.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

const standinPackage = "github.com/hermes-agent/hermes-s6/tools/cmd/hermes-agent-standin"

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "standin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// standinBinary builds the real command once and returns its path.
func standinBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "hermes-agent-standin")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, standinPackage).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", standinPackage, err, out)
		}
	})
	assert.NilError(t, buildErr)
	return bin
}

// waitOpts bounds every wait in these tests.
var waitOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(20 * time.Millisecond)}

// syncBuffer collects output safely from the copying goroutines of exec.Cmd.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// agent is a running hermes-agent-standin process, reaped by a goroutine.
type agent struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	state  *os.ProcessState // valid once done is closed
}

func startAgent(t *testing.T, env []string, args ...string) *agent {
	t.Helper()
	a := &agent{done: make(chan struct{})}
	a.cmd = exec.Command(standinBinary(t), args...)
	a.cmd.Env = append(os.Environ(), env...) // later entries win
	a.cmd.Stdout = &a.stdout
	a.cmd.Stderr = &a.stderr
	assert.NilError(t, a.cmd.Start())
	go func() {
		_ = a.cmd.Wait()
		a.state = a.cmd.ProcessState
		close(a.done)
	}()
	t.Cleanup(func() {
		if !a.exited() {
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent %q stdout:\n%s\nstderr:\n%s", args, a.stdout.String(), a.stderr.String())
		}
	})
	return a
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

func (a *agent) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *agent) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	assert.NilError(t, a.cmd.Process.Signal(sig))
}

// waitExit polls until the process has exited and returns its state.
func (a *agent) waitExit(t *testing.T) *os.ProcessState {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Success()
		}
		return poll.Continue("pid %d still running", a.pid())
	}, waitOpts...)
	return a.state
}

// gatewayEnv pins everything the gateway reads from the environment.
func gatewayEnv(home string, port int, extra ...string) []string {
	return append([]string{
		"HERMES_HOME=" + home,
		"API_SERVER_HOST=127.0.0.1",
		"API_SERVER_PORT=" + strconv.Itoa(port),
		"HERMES_STANDIN_ENV_DUMP=",
	}, extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// healthyGateway succeeds once GET /health on port answers for pid a.
func healthyGateway(a *agent, port int, want gatewayHealth) poll.Check {
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	return func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("agent exited early (%v); stderr: %s", a.state, a.stderr.String()))
		}
		var got gatewayHealth
		if err := getJSON(url, &got); err != nil {
			return poll.Continue("%v", err)
		}
		if got != want {
			return poll.Continue("health is %+v, want %+v", got, want)
		}
		return poll.Success()
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func postCrash(t *testing.T, port int, query string) map[string]any {
	t.Helper()
	resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash%s", port, query), "", nil)
	assert.NilError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, resp.StatusCode, http.StatusAccepted)
	var body map[string]any
	assert.NilError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body
}

func TestGatewayRunAndSIGTERM(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home") // created by the gateway
	port := freePort(t)
	dump := filepath.Join(t.TempDir(), "env.txt")
	a := startAgent(t, gatewayEnv(home, port, "HERMES_STANDIN_ENV_DUMP="+dump, "STANDIN_TEST_MARKER=from the test"),
		"gateway", "run")

	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)

	pidPath := filepath.Join(home, pidFileName)
	pid, err := readPidFile(pidPath)
	assert.NilError(t, err)
	assert.Equal(t, pid, a.pid())
	// /health can answer a moment before the start line is written.
	startLine := fmt.Sprintf("hermes-agent-standin: gateway[default] started pid=%d port=%d\n", a.pid(), port)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if strings.Contains(a.stdout.String(), startLine) {
			return poll.Success()
		}
		return poll.Continue("no start line yet in %q", a.stdout.String())
	}, waitOpts...)

	envDump, err := os.ReadFile(dump)
	assert.NilError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(envDump), "\n"), "\n")
	assert.Check(t, slices.Contains(lines, "STANDIN_TEST_MARKER=from the test"))
	assert.Check(t, slices.Contains(lines, "HERMES_HOME="+home))
	assert.Check(t, slices.IsSorted(lines), "environment dump must be sorted")

	a.signal(t, syscall.SIGTERM)
	state := a.waitExit(t)
	assert.Equal(t, state.ExitCode(), 0)
	assert.Check(t, !fileExists(pidPath), "pid file must be removed on clean exit")
	assert.Equal(t, a.stdout.String(), fmt.Sprintf(
		"hermes-agent-standin: gateway[default] started pid=%d port=%d\n"+
			"hermes-agent-standin: gateway[default] received SIGTERM, shutting down\n"+
			"hermes-agent-standin: gateway[default] stopped\n", a.pid(), port))
	assert.Equal(t, a.stderr.String(), "")
}

func TestGatewayProfileConfigAndStopDelay(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	dir := filepath.Join(home, "profiles", "work")
	assert.NilError(t, os.MkdirAll(dir, 0o750))
	port := freePort(t)
	const delay = 400 * time.Millisecond
	config := fmt.Sprintf("# test profile\napi_server_port: %d\nstop_delay_ms: %d\nmodel: anything\n", port, delay.Milliseconds())
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o640))

	// API_SERVER_PORT names a different port: the config must win.
	a := startAgent(t, gatewayEnv(home, freePort(t)), "--profile", "work", "gateway", "run")
	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "work", Port: port}), waitOpts...)
	assert.Check(t, fileExists(filepath.Join(dir, pidFileName)))
	assert.Check(t, !fileExists(filepath.Join(home, pidFileName)), "the default profile's pid file must not be written")

	sent := time.Now()
	a.signal(t, syscall.SIGINT)
	state := a.waitExit(t)
	assert.Equal(t, state.ExitCode(), 0)
	assert.Check(t, time.Since(sent) >= delay, "exited %s after SIGINT, before stop_delay_ms=%s", time.Since(sent), delay)
	assert.Check(t, is.Contains(a.stdout.String(), "hermes-agent-standin: gateway[work] received SIGINT, shutting down\n"))
	assert.Check(t, is.Contains(a.stdout.String(), "hermes-agent-standin: gateway[work] stopped\n"))
	assert.Check(t, !fileExists(filepath.Join(dir, pidFileName)))
}

func TestGatewayCrashExits70(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	a := startAgent(t, gatewayEnv(home, port), "gateway", "run")
	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)

	body := postCrash(t, port, "")
	assert.Equal(t, body["exit_code"], float64(70))

	state := a.waitExit(t)
	assert.Equal(t, state.ExitCode(), 70)
	assert.Check(t, is.Contains(a.stderr.String(), "simulated crash"))
	assert.Check(t, !strings.Contains(a.stdout.String(), "stopped"), "a crash is not a clean stop")
	pid, err := readPidFile(filepath.Join(home, pidFileName))
	assert.NilError(t, err, "a crash leaves the pid file behind")
	assert.Equal(t, pid, a.pid())
}

func TestGatewayCrashBySIGKILL(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	a := startAgent(t, gatewayEnv(home, port), "gateway", "run")
	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)

	body := postCrash(t, port, "?signal=KILL")
	assert.Equal(t, body["signal"], "SIGKILL")

	state := a.waitExit(t)
	ws := state.Sys().(syscall.WaitStatus)
	assert.Assert(t, ws.Signaled(), "want death by signal, got %v", state)
	assert.Equal(t, ws.Signal(), syscall.SIGKILL)
}

func TestGatewayCrashRejectsOtherRequests(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	a := startAgent(t, gatewayEnv(home, port), "gateway", "run")
	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)

	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/crash", port))
	assert.NilError(t, err)
	resp.Body.Close()
	assert.Equal(t, resp.StatusCode, http.StatusMethodNotAllowed)

	resp, err = httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash?signal=HUP", port), "", nil)
	assert.NilError(t, err)
	resp.Body.Close()
	assert.Equal(t, resp.StatusCode, http.StatusBadRequest)

	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t).ExitCode(), 0)
}

func TestGatewayInvalidConfigExits78(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	cfg := filepath.Join(home, "config.yaml")
	assert.NilError(t, os.WriteFile(cfg, []byte("# ok\nstop_delay_ms: 5\nthis is not a key value line\n"), 0o640))
	a := startAgent(t, gatewayEnv(home, freePort(t)), "gateway", "run")

	state := a.waitExit(t)
	assert.Equal(t, state.ExitCode(), 78)
	assert.Equal(t, a.stdout.String(), "")
	assert.Check(t, is.Contains(a.stderr.String(), cfg+":3: "))
	assert.Equal(t, strings.Count(a.stderr.String(), "\n"), 1)
}

func TestGatewayListenFailureExits1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	home := t.TempDir()

	a := startAgent(t, gatewayEnv(home, port), "gateway", "run")
	state := a.waitExit(t)
	assert.Equal(t, state.ExitCode(), 1)
	assert.Check(t, is.Contains(a.stderr.String(), fmt.Sprintf("cannot listen on 127.0.0.1:%d", port)))
	assert.Check(t, !fileExists(filepath.Join(home, pidFileName)))
}

func TestGatewayReplace(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	// A stop delay shows that --replace waits for the old gateway to exit
	// instead of racing it for the port.
	assert.NilError(t, os.WriteFile(filepath.Join(home, "config.yaml"), []byte("stop_delay_ms: 300\n"), 0o640))
	env := gatewayEnv(home, port)
	first := startAgent(t, env, "gateway", "run")
	poll.WaitOn(t, healthyGateway(first, port, gatewayHealth{Status: "ok", PID: first.pid(), Profile: "default", Port: port}), waitOpts...)

	second := startAgent(t, env, "-p", "default", "gateway", "run", "--replace")
	poll.WaitOn(t, healthyGateway(second, port, gatewayHealth{Status: "ok", PID: second.pid(), Profile: "default", Port: port}), waitOpts...)

	state := first.waitExit(t)
	assert.Equal(t, state.ExitCode(), 0)
	assert.Check(t, is.Contains(first.stdout.String(), "received SIGTERM, shutting down\n"))
	assert.Check(t, is.Contains(second.stdout.String(),
		fmt.Sprintf("--replace: stopping previous gateway pid=%d with SIGTERM\n", first.pid())))
	pid, err := readPidFile(filepath.Join(home, pidFileName))
	assert.NilError(t, err)
	assert.Equal(t, pid, second.pid(), "the old gateway must not remove the new one's pid file")

	second.signal(t, syscall.SIGTERM)
	assert.Equal(t, second.waitExit(t).ExitCode(), 0)
	assert.Check(t, !fileExists(filepath.Join(home, pidFileName)))
}

func TestGatewayReplaceIgnoresStalePidFile(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	// The pid of a process that has exited and been reaped.
	gone := exec.Command(standinBinary(t), "version")
	assert.NilError(t, gone.Run())
	assert.NilError(t, writePidFile(filepath.Join(home, pidFileName), gone.Process.Pid))

	port := freePort(t)
	a := startAgent(t, gatewayEnv(home, port), "gateway", "run", "--replace")
	poll.WaitOn(t, healthyGateway(a, port, gatewayHealth{Status: "ok", PID: a.pid(), Profile: "default", Port: port}), waitOpts...)
	assert.Check(t, !strings.Contains(a.stdout.String(), "--replace: stopping"))
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t).ExitCode(), 0)
}

func TestProcessAliveTreatsZombiesAsDead(t *testing.T) {
	t.Parallel()
	assert.Assert(t, processAlive(os.Getpid()))

	child := exec.Command(standinBinary(t), "version")
	child.Stdout = io.Discard
	assert.NilError(t, child.Start())
	// Not reaped yet: it becomes a zombie once it exits.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if isZombie(child.Process.Pid) {
			return poll.Success()
		}
		return poll.Continue("pid %d not a zombie yet", child.Process.Pid)
	}, waitOpts...)
	assert.Check(t, !processAlive(child.Process.Pid))
	assert.NilError(t, child.Wait())
	assert.Check(t, !processAlive(child.Process.Pid))
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	a := startAgent(t, nil, "dashboard", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--no-open")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("dashboard exited early; stderr: %s", a.stderr.String()))
		}
		var h struct {
			Status string `json:"status"`
			PID    int    `json:"pid"`
		}
		if err := getJSON(base+"/health", &h); err != nil {
			return poll.Continue("%v", err)
		}
		if h.Status != "ok" || h.PID != a.pid() {
			return poll.Continue("health is %+v", h)
		}
		return poll.Success()
	}, waitOpts...)

	resp, err := httpClient.Get(base + "/")
	assert.NilError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NilError(t, err)
	assert.Equal(t, resp.StatusCode, http.StatusOK)
	assert.Check(t, is.Contains(string(page), "Hermes dashboard (stand-in)"))

	resp, err = httpClient.Get(base + "/nope")
	assert.NilError(t, err)
	resp.Body.Close()
	assert.Equal(t, resp.StatusCode, http.StatusNotFound)

	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t).ExitCode(), 0)
	assert.Equal(t, a.stdout.String(), fmt.Sprintf(
		"hermes-agent-standin: dashboard started pid=%d addr=127.0.0.1:%d\n"+
			"hermes-agent-standin: dashboard received SIGTERM, shutting down\n"+
			"hermes-agent-standin: dashboard stopped\n", a.pid(), port))
}

func TestDashboardBadPort(t *testing.T) {
	code, _, stderr := runMain(t, "dashboard", "--port", "0")
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(oneLine(t, stderr), "--port 0 is not in 1..65535"))
}
