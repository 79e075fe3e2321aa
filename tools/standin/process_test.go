package standin

// Tests that need a real process: serving, signals, exit codes, --replace.
// They run the hermes-agent-standin binary, built once per test run.

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

	"github.com/hermes-agent/hermes-s6/tools/internal/syncbuf"
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

// agent is a running stand-in process, reaped by a goroutine.
type agent struct {
	cmd    *exec.Cmd
	stdout syncbuf.Buffer
	stderr syncbuf.Buffer
	done   chan struct{}
	state  *os.ProcessState // valid once done is closed
}

// baseEnv is a clean environment: nothing of the developer's shell that the
// stand-in reads.
func baseEnv(home string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "HERMES_HOME=" + home}, extra...)
}

func startAgent(t *testing.T, env []string, args ...string) *agent {
	t.Helper()
	a := &agent{done: make(chan struct{})}
	a.cmd = exec.Command(standinBinary(t), args...)
	a.cmd.Env = env
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

// waitExit polls until the process has exited and returns its exit code (-1
// when a signal ended it).
func (a *agent) waitExit(t *testing.T) int {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Success()
		}
		return poll.Continue("pid %d still running", a.pid())
	}, waitOpts...)
	return a.state.ExitCode()
}

// running polls until gateway_state.json says running for this process.
func (a *agent) running(home string) poll.Check {
	return func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("agent exited early (%v); stderr: %s", a.state, a.stderr.String()))
		}
		st := readRuntimeStatus(home)
		if st == nil || st["gateway_state"] != "running" || st["pid"] != float64(a.pid()) {
			return poll.Continue("gateway_state.json is %v", st)
		}
		return poll.Success()
	}
}

func (a *agent) stderrContains(s string) poll.Check {
	return func(poll.LogT) poll.Result {
		if strings.Contains(a.stderr.String(), s) {
			return poll.Success()
		}
		if a.exited() {
			return poll.Error(fmt.Errorf("agent exited (%v) without %q on stderr: %s", a.state, s, a.stderr.String()))
		}
		return poll.Continue("no %q on stderr yet", s)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const usableKey = "0123456789abcdef0123"

var httpClient = &http.Client{Timeout: 3 * time.Second}

func get(url string) (int, string, http.Header, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// serving polls until GET /health on port answers 200.
func serving(a *agent, port int) poll.Check {
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	return func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("agent exited early (%v); stderr: %s", a.state, a.stderr.String()))
		}
		code, body, _, err := get(url)
		if err != nil || code != 200 {
			return poll.Continue("GET %s: %d %q %v", url, code, body, err)
		}
		return poll.Success()
	}
}

func detailed(t *testing.T, port int) map[string]any {
	t.Helper()
	code, body, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/health/detailed", port))
	assert.NilError(t, err)
	assert.Equal(t, code, 200)
	var m map[string]any
	assert.NilError(t, json.Unmarshal([]byte(body), &m))
	return m
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestGatewayServesHealthWithAUsableKey(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home") // created by the gateway
	port := freePort(t)
	dump := filepath.Join(t.TempDir(), "env.txt")
	a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port),
		"HERMES_STANDIN_ENV_DUMP="+dump, "STANDIN_TEST_MARKER=from the test"), "gateway", "run", "-v")
	poll.WaitOn(t, serving(a, port), waitOpts...)
	poll.WaitOn(t, a.running(home), waitOpts...)

	for _, path := range []string{"/health", "/v1/health"} {
		code, body, hdr, err := get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(code, 200))
		assert.Check(t, is.Equal(body, `{"status":"ok","platform":"hermes-agent"}`))
		assert.Check(t, is.Equal(hdr.Get("Content-Type"), "application/json; charset=utf-8"))
	}
	d := detailed(t, port)
	assert.Check(t, is.Equal(d["status"], "ok"))
	assert.Check(t, is.Equal(d["platform"], "hermes-agent"))
	assert.Check(t, is.Equal(d["gateway_state"], "running"))
	assert.Check(t, is.Equal(d["pid"], float64(a.pid())))
	assert.Check(t, is.Equal(d["active_agents"], 0.0))
	assert.Check(t, is.Equal(d["platforms"].(map[string]any)["api_server"].(map[string]any)["state"], "connected"))
	code, _, _, _ := get(fmt.Sprintf("http://127.0.0.1:%d/v1/models", port))
	assert.Check(t, is.Equal(code, 404), "the stand-in serves no agent API")

	assert.Check(t, is.Contains(a.stdout.String(), "☤ Hermes Gateway Starting..."))
	poll.WaitOn(t, a.stderrContains(fmt.Sprintf("INFO gateway.platforms.api_server: [Api_Server] API server listening on http://127.0.0.1:%d (model: hermes-agent)\n", port)), waitOpts...)

	pidRec := readJSON(t, filepath.Join(home, pidFileName))
	assert.Check(t, is.Equal(pidRec["pid"], float64(a.pid())))
	assert.Check(t, is.Equal(pidRec["kind"], "hermes-gateway"))
	assert.Check(t, is.DeepEqual(pidRec["argv"], []any{standinBinary(t), "gateway", "run", "-v"}))
	assert.Check(t, is.Equal(pidRec["hermes_home"], canonicalHome(home)))
	_, hasStart := pidRec["start_time"].(float64)
	assert.Check(t, hasStart)
	assert.Check(t, lockHeld(home), "gateway.lock is held while the gateway runs")
	assert.Check(t, is.Equal(runningPID(home), a.pid()))

	envDump, err := os.ReadFile(dump)
	assert.NilError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(envDump), "\n"), "\n")
	assert.Check(t, slices.Contains(lines, "STANDIN_TEST_MARKER=from the test"))
	assert.Check(t, slices.IsSorted(lines))

	// An unexpected SIGTERM: graceful stop, exit 1 so a supervisor revives it.
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 1)
	assert.Check(t, is.Contains(a.stderr.String(), "INFO gateway.run: Received SIGTERM — initiating shutdown\n"))
	st := readRuntimeStatus(home)
	assert.Check(t, is.Equal(st["gateway_state"], "stopped"))
	assert.Check(t, !fileExists(filepath.Join(home, pidFileName)), "gateway.pid is removed on a graceful exit")
	assert.Check(t, !lockHeld(home))
	assert.Check(t, !listening(port))
}

func TestGatewayWithoutAPIServerKeepsRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		env    []string
		config string
		log    string
	}{
		{"no key", nil, "", "WARNING gateway.run: No messaging platforms enabled.\n"},
		{"short key", []string{"API_SERVER_KEY=0123456789abcde"}, "", "WARNING gateway.run: No messaging platforms enabled.\n"},
		{"API_SERVER_ENABLED without a key", []string{"API_SERVER_ENABLED=true"}, "",
			"ERROR gateway.platforms.api_server: [Api_Server] Refusing to start: API_SERVER_KEY is required for the API server, including loopback-only binds on 127.0.0.1.\n"},
		{"config enabled without a key", nil, "platforms:\n  api_server:\n    enabled: true\n",
			"ERROR gateway.platforms.api_server: [Api_Server] Refusing to start: API_SERVER_KEY is required for the API server, including loopback-only binds on 127.0.0.1.\n"},
		{"config enabled: false", []string{"API_SERVER_KEY=" + usableKey}, "platforms:\n  api_server:\n    enabled: false\n", "WARNING gateway.run: No messaging platforms enabled.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			if tc.config != "" {
				writeFile(t, filepath.Join(home, "config.yaml"), tc.config)
			}
			port := freePort(t)
			a := startAgent(t, baseEnv(home, append([]string{"API_SERVER_PORT=" + strconv.Itoa(port)}, tc.env...)...), "gateway", "run")
			poll.WaitOn(t, a.running(home), waitOpts...)
			poll.WaitOn(t, a.stderrContains(tc.log), waitOpts...)
			assert.Check(t, !listening(port), "nothing listens without a usable key")
			assert.Check(t, !a.exited(), "the gateway keeps running")
			a.signal(t, syscall.SIGINT)
			assert.Equal(t, a.waitExit(t), 0, "SIGINT is a planned stop")
		})
	}
}

func TestGatewayEnvironmentPrecedence(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	home := filepath.Join(root, "profiles", "work")
	dotenvPort, envPort, configPort := freePort(t), freePort(t), freePort(t)
	writeFile(t, filepath.Join(home, ".env"), "# the profile's own secrets\nexport API_SERVER_KEY=\""+usableKey+"\"\nAPI_SERVER_PORT="+strconv.Itoa(dotenvPort)+" # wins\n")
	writeFile(t, filepath.Join(home, "config.yaml"), "platforms:\n  api_server:\n    extra:\n      port: "+strconv.Itoa(configPort)+"\n")
	a := startAgent(t, baseEnv(root, "API_SERVER_KEY=short", "API_SERVER_PORT="+strconv.Itoa(envPort)), "gateway", "run", "--profile", "work")
	poll.WaitOn(t, serving(a, dotenvPort), waitOpts...)
	assert.Check(t, !listening(envPort) && !listening(configPort))
	assert.Check(t, is.Equal(detailed(t, dotenvPort)["pid"], float64(a.pid())))
	assert.Check(t, fileExists(filepath.Join(home, pidFileName)), "the profile's own runtime files")
	assert.Check(t, !fileExists(filepath.Join(root, pidFileName)))
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 1)

	// Without a port in the environment, config.yaml's extra.port is used.
	home2 := t.TempDir()
	writeFile(t, filepath.Join(home2, "config.yaml"), "platforms:\n  api_server:\n    extra:\n      port: "+strconv.Itoa(configPort)+"\n")
	b := startAgent(t, baseEnv(home2, "API_SERVER_KEY="+usableKey), "gateway", "run")
	poll.WaitOn(t, serving(b, configPort), waitOpts...)
	b.signal(t, syscall.SIGINT)
	assert.Equal(t, b.waitExit(t), 0)
}

func TestGatewayInvalidConfigYAMLIsLoggedNotFatal(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "config.yaml"), "this is: not: valid\n  - nested\nstandin: {fail_start: true}\n")
	port := freePort(t)
	a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run")
	poll.WaitOn(t, serving(a, port), waitOpts...)
	poll.WaitOn(t, a.stderrContains("WARNING gateway.config: Failed to process config.yaml — falling back to .env / gateway.json values. Check "+filepath.Join(home, "config.yaml")+" for syntax errors. Error: "), waitOpts...)
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 1)
}

func TestGatewayPortInUseIsRetried(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	port := blocker.Addr().(*net.TCPAddr).Port
	a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run")
	poll.WaitOn(t, a.stderrContains(fmt.Sprintf("ERROR gateway.platforms.api_server: [Api_Server] Port %d already in use. Set a different port in config.yaml: platforms.api_server.port\n", port)), waitOpts...)
	poll.WaitOn(t, a.running(home), waitOpts...)
	assert.Check(t, !a.exited(), "the gateway keeps running without the API server")
	blocker.Close()
	poll.WaitOn(t, serving(a, port), waitOpts...)
	a.signal(t, syscall.SIGINT)
	assert.Equal(t, a.waitExit(t), 0)
}

func TestGatewayKeepsKeysItDoesNotOwn(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, runtimeStatusFile), `{"desired_state":"running","updated_at":1700000000}`)
	a := startAgent(t, baseEnv(home), "gateway", "run")
	poll.WaitOn(t, a.running(home), waitOpts...)
	st := readRuntimeStatus(home)
	assert.Check(t, is.Equal(st["desired_state"], "running"))
	assert.Check(t, is.Equal(st["kind"], "hermes-gateway"))
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 1)
	st = readRuntimeStatus(home)
	assert.Check(t, is.Equal(st["desired_state"], "running"))
	assert.Check(t, is.Equal(st["gateway_state"], "stopped"))
}

// writeMarker writes a marker file the way gateway/status.py does.
func writeMarker(t *testing.T, path string, pid int, age time.Duration) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"target_pid": pid, "target_start_time": processStartTime(pid), "stopper_pid": os.Getpid(),
		"written_at": time.Now().Add(-age).UTC().Format("2006-01-02T15:04:05.000000-07:00"),
	})
	writeFile(t, path, string(b))
}

func TestGatewaySignalsAndExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		marker func(t *testing.T, home string, pid int)
		sig    syscall.Signal
		code   int
		log    string
	}{
		{"planned stop", func(t *testing.T, home string, pid int) {
			writeMarker(t, filepath.Join(home, plannedStopMarkerFile), pid, time.Second)
		}, syscall.SIGTERM, 0, "Received SIGTERM as a planned gateway stop — exiting cleanly"},
		{"stale planned stop", func(t *testing.T, home string, pid int) {
			writeMarker(t, filepath.Join(home, plannedStopMarkerFile), pid, 2*time.Minute)
		}, syscall.SIGTERM, 1, "Received SIGTERM — initiating shutdown"},
		{"planned stop of another pid", func(t *testing.T, home string, pid int) {
			writeMarker(t, filepath.Join(home, plannedStopMarkerFile), os.Getpid(), time.Second)
		}, syscall.SIGTERM, 1, "Received SIGTERM — initiating shutdown"},
		{"takeover", func(t *testing.T, home string, pid int) {
			assert.NilError(t, writeTakeoverMarker(home, pid, processStartTime(pid)))
		}, syscall.SIGTERM, 0, "Received SIGTERM as a planned --replace takeover — exiting cleanly"},
		{"SIGINT", nil, syscall.SIGINT, 0, "Received SIGINT as a planned gateway stop — exiting cleanly"},
		{"SIGUSR1", nil, syscall.SIGUSR1, 75, "Received SIGUSR1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			a := startAgent(t, baseEnv(home), "gateway", "run", "-v")
			poll.WaitOn(t, a.running(home), waitOpts...)
			if tc.marker != nil {
				tc.marker(t, home, a.pid())
			}
			a.signal(t, tc.sig)
			assert.Equal(t, a.waitExit(t), tc.code)
			assert.Check(t, is.Contains(a.stderr.String(), tc.log))
			st := readRuntimeStatus(home)
			assert.Check(t, is.Equal(st["gateway_state"], "stopped"))
			if tc.sig == syscall.SIGUSR1 {
				assert.Check(t, is.Equal(st["restart_requested"], true))
			}
			assert.Check(t, !fileExists(filepath.Join(home, plannedStopMarkerFile)) || tc.name == "planned stop of another pid",
				"a marker for this process is consumed")
		})
	}
}

func TestGatewayQuietAndDefaultVerbosity(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	a := startAgent(t, baseEnv(home), "gateway", "run", "-q")
	poll.WaitOn(t, a.running(home), waitOpts...)
	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 1)
	assert.Equal(t, a.stderr.String(), "", "-q: no log lines")

	home = t.TempDir()
	b := startAgent(t, baseEnv(home), "gateway", "run")
	poll.WaitOn(t, b.running(home), waitOpts...)
	b.signal(t, syscall.SIGTERM)
	assert.Equal(t, b.waitExit(t), 1)
	assert.Equal(t, b.stderr.String(), "WARNING gateway.run: No messaging platforms enabled.\n", "WARNING and up by default")
}

func TestGatewayStandinHooks(t *testing.T) {
	t.Parallel()
	t.Run("fail_start", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		writeFile(t, filepath.Join(home, "config.yaml"), "standin:\n  fail_start: true\n")
		a := startAgent(t, baseEnv(home), "gateway", "run")
		assert.Equal(t, a.waitExit(t), 78)
		assert.Check(t, is.Contains(a.stderr.String(), "hermes-agent-standin: [stand-in hook] "+filepath.Join(home, "config.yaml")+" sets standin.fail_start: true"))
		assert.Check(t, !fileExists(filepath.Join(home, pidFileName)))
	})
	t.Run("bad hook", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		writeFile(t, filepath.Join(home, "config.yaml"), "standin:\n  stop_delay_ms: soon\n")
		a := startAgent(t, baseEnv(home), "gateway", "run")
		assert.Equal(t, a.waitExit(t), 78)
		assert.Check(t, is.Contains(a.stderr.String(), "standin.stop_delay_ms: soon is not a whole number"))
	})
	t.Run("stop_delay_ms", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		const delay = 400 * time.Millisecond
		writeFile(t, filepath.Join(home, "config.yaml"), "standin:\n  stop_delay_ms: 400\n")
		a := startAgent(t, baseEnv(home), "gateway", "run")
		poll.WaitOn(t, a.running(home), waitOpts...)
		sent := time.Now()
		a.signal(t, syscall.SIGINT)
		assert.Equal(t, a.waitExit(t), 0)
		assert.Check(t, time.Since(sent) >= delay, "exited after %s", time.Since(sent))
		assert.Check(t, is.Contains(a.stderr.String(), "[stand-in hook] standin.stop_delay_ms: SIGINT received, waiting 400ms before stopping\n"))
		assert.Check(t, is.Contains(a.stderr.String(), "[stand-in hook] standin.stop_delay_ms: waited 400ms\n"))
	})
	t.Run("crash", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		port := freePort(t)
		a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run")
		poll.WaitOn(t, serving(a, port), waitOpts...)
		resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash", port), "", nil)
		assert.NilError(t, err)
		resp.Body.Close()
		assert.Check(t, is.Equal(resp.StatusCode, http.StatusAccepted))
		assert.Equal(t, a.waitExit(t), 70)
		assert.Check(t, fileExists(filepath.Join(home, pidFileName)), "a crash leaves gateway.pid behind")
		assert.Check(t, !lockHeld(home), "the kernel drops the lock")
	})
	t.Run("crash by SIGKILL", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		port := freePort(t)
		a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run")
		poll.WaitOn(t, serving(a, port), waitOpts...)
		resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash?signal=KILL", port), "", nil)
		assert.NilError(t, err)
		resp.Body.Close()
		a.waitExit(t)
		ws := a.state.Sys().(syscall.WaitStatus)
		assert.Check(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%v", a.state)
	})
}

func TestGatewayCrashRejectsOtherSignals(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	a := startAgent(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run")
	poll.WaitOn(t, serving(a, port), waitOpts...)
	resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash?signal=HUP", port), "", nil)
	assert.NilError(t, err)
	resp.Body.Close()
	assert.Check(t, is.Equal(resp.StatusCode, http.StatusBadRequest))
	code, _, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/debug/crash", port))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, http.StatusMethodNotAllowed))
	assert.Check(t, !a.exited())
	a.signal(t, syscall.SIGINT)
	assert.Equal(t, a.waitExit(t), 0)
}

func TestSecondGateway(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	env := baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port))
	first := startAgent(t, env, "gateway", "run")
	poll.WaitOn(t, serving(first, port), waitOpts...)

	second := startAgent(t, env, "gateway", "run")
	assert.Equal(t, second.waitExit(t), 1)
	assert.Check(t, strings.HasPrefix(second.stdout.String(), fmt.Sprintf("✗ Another gateway instance is already running (PID %d).\n", first.pid())))

	supervised := startAgent(t, append(slices.Clone(env), "HERMES_S6_SUPERVISED_CHILD=1"), "gateway", "run")
	assert.Equal(t, supervised.waitExit(t), 1)
	assert.Check(t, is.Contains(supervised.stdout.String(), fmt.Sprintf("❌ Gateway already running (PID %d).", first.pid())))
	assert.Check(t, !first.exited(), "refused starts leave the first gateway alone")

	// --replace: the first is stopped with a takeover marker (exit 0), the
	// new one serves.
	replacer := startAgent(t, env, "gateway", "run", "--replace")
	assert.Equal(t, first.waitExit(t), 0)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if replacer.exited() {
			return poll.Error(fmt.Errorf("replacer exited: %s", replacer.stderr.String()))
		}
		code, body, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/health/detailed", port))
		if err != nil || code != 200 || !strings.Contains(body, fmt.Sprintf(`"pid":%d`, replacer.pid())) {
			return poll.Continue("%d %s %v", code, body, err)
		}
		return poll.Success()
	}, waitOpts...)
	assert.Check(t, !fileExists(filepath.Join(home, takeoverMarkerFile)), "the marker was consumed")
	replacer.signal(t, syscall.SIGTERM)
	assert.Equal(t, replacer.waitExit(t), 1)
}

func TestGatewayStartsOverStalePidFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, home string)
	}{
		{"bare pid", func(t *testing.T, home string) { writeFile(t, filepath.Join(home, pidFileName), "99999\n") }},
		{"json of a dead pid", func(t *testing.T, home string) {
			writeFile(t, filepath.Join(home, pidFileName), `{"pid":99999,"kind":"hermes-gateway"}`)
			writeFile(t, filepath.Join(home, lockFileName), `{"pid":99999}`)
		}},
		{"symlink", func(t *testing.T, home string) {
			target := filepath.Join(t.TempDir(), "hostname")
			writeFile(t, target, "keep me")
			assert.NilError(t, os.Symlink(target, filepath.Join(home, pidFileName)))
			t.Cleanup(func() {
				b, _ := os.ReadFile(target)
				assert.Check(t, is.Equal(string(b), "keep me"), "a symlink's target is never written")
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			tc.setup(t, home)
			a := startAgent(t, baseEnv(home), "gateway", "run")
			poll.WaitOn(t, a.running(home), waitOpts...)
			assert.Check(t, is.Equal(readJSON(t, filepath.Join(home, pidFileName))["pid"], float64(a.pid())))
			a.signal(t, syscall.SIGINT)
			assert.Equal(t, a.waitExit(t), 0)
		})
	}
}

func TestDashboardServes(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	a := startAgent(t, baseEnv(home), "dashboard", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--no-open", "--skip-build", "--isolated")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("exited: %s", a.stderr.String()))
		}
		code, body, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil || code != 200 || !strings.Contains(body, "Hermes dashboard") {
			return poll.Continue("%d %q %v", code, body, err)
		}
		return poll.Success()
	}, waitOpts...)
	assert.Check(t, is.Equal(a.stdout.String(), fmt.Sprintf("HERMES_DASHBOARD_READY port=%d\n", port)))

	// The same port again: BACKEND_PORT_IN_USE, exit 75.
	b := startAgent(t, baseEnv(home), "dashboard", "--port", strconv.Itoa(port))
	assert.Equal(t, b.waitExit(t), 75)
	assert.Check(t, is.Equal(b.stdout.String(), fmt.Sprintf("BACKEND_PORT_IN_USE port=%d\n", port)))

	a.signal(t, syscall.SIGTERM)
	assert.Equal(t, a.waitExit(t), 0)
}

func TestDashboardPublicBindWithAuth(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	port := freePort(t)
	writeFile(t, filepath.Join(home, ".env"), "HERMES_DASHBOARD_BASIC_AUTH_USERNAME=admin\nHERMES_DASHBOARD_BASIC_AUTH_PASSWORD=secret\n")
	a := startAgent(t, baseEnv(home), "dashboard", "--host", "0.0.0.0", "--port", strconv.Itoa(port), "--no-open")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if a.exited() {
			return poll.Error(fmt.Errorf("exited: %s", a.stderr.String()))
		}
		if !listening(port) {
			return poll.Continue("not listening on %d", port)
		}
		return poll.Success()
	}, waitOpts...)
	a.signal(t, syscall.SIGINT)
	assert.Equal(t, a.waitExit(t), 0)

	b := startAgent(t, baseEnv(t.TempDir()), "dashboard", "--host", "0.0.0.0", "--port", strconv.Itoa(port))
	assert.Equal(t, b.waitExit(t), 78)
}
