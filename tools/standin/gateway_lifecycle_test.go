package standin

// gateway run, in process: the API server's endpoints, the runtime files
// through a whole life, and each way it ends (gateway/run.py start_gateway,
// gateway/status.py, gateway/platforms/api_server.py; see gateway.go).

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

func post(url string) (int, string, error) {
	resp, err := httpClient.Post(url, "application/json", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b [512]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n]), nil
}

// A gateway with a usable key serves the unauthenticated health endpoints,
// /health/detailed from its own gateway_state.json, and on SIGUSR1 (the
// in-band restart) stops serving, records restart_requested and stopped,
// removes its pid file, releases its lock and exits 75 for the supervisor.
func TestGatewayInProcessServesThenRestartsOnSIGUSR1(t *testing.T) {
	guardSignals(t)
	home := filepath.Join(t.TempDir(), "home")
	port := freePort(t)
	g := startInProcess(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run", "-vv")
	poll.WaitOn(t, g.running(home), waitOpts...)
	poll.WaitOn(t, apiState(home, "connected"), waitOpts...)

	for _, path := range []string{"/health", "/v1/health"} {
		code, body, _, err := get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(code, http.StatusOK))
		assert.Check(t, is.Equal(body, `{"status":"ok","platform":"hermes-agent"}`))
	}
	d := detailed(t, port)
	assert.Check(t, is.Equal(d["gateway_state"], "running"))
	assert.Check(t, is.Equal(d["pid"], float64(os.Getpid())))
	assert.Check(t, is.Equal(d["active_agents"], 0.0))
	assert.Check(t, is.Nil(d["exit_reason"]))
	_, stamped := d["updated_at"].(string)
	assert.Check(t, stamped, "updated_at is the ISO time of the last write: %v", d["updated_at"])
	api := d["platforms"].(map[string]any)["api_server"].(map[string]any)
	assert.Check(t, is.Equal(api["state"], "connected"))
	assert.Check(t, is.Equal(api["writer_pid"], float64(os.Getpid())))
	assert.Check(t, lockHeld(home))
	assert.Check(t, is.Equal(readJSON(t, filepath.Join(home, pidFileName))["pid"], float64(os.Getpid())))

	signalSelf(t, syscall.SIGUSR1)
	assert.Equal(t, g.wait(t), exitRestart)
	st := readRuntimeStatus(home)
	assert.Check(t, is.Equal(st["gateway_state"], "stopped"))
	assert.Check(t, is.Equal(st["restart_requested"], true))
	assert.Check(t, !fileExists(filepath.Join(home, pidFileName)))
	assert.Check(t, !lockHeld(home))
	assert.Check(t, !listening(port))
	// -vv is DEBUG: INFO lines of both loggers appear, with Python's format.
	assert.Check(t, is.Contains(g.stderr.String(), "INFO gateway.run: Received SIGUSR1 — restart requested (exit 75 for the service manager)\n"))
	assert.Check(t, is.Contains(g.stderr.String(), "INFO gateway.platforms.api_server: [Api_Server] API server stopped\n"))
	assert.Check(t, is.Contains(g.stdout.String(), "☤ Hermes Gateway Starting..."))
}

// The stop signals other than SIGUSR1: an unexpected SIGTERM exits 1 so a
// supervisor revives the gateway; SIGTERM with a planned-stop marker naming
// this process, and SIGINT, exit 0. The stand-in hook stop_delay_ms delays
// the exit and says so. The marker is consumed.
func TestGatewayInProcessStopSignals(t *testing.T) {
	guardSignals(t)
	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		planned bool
		code    int
		log     string
	}{
		{"unexpected SIGTERM", syscall.SIGTERM, false, exitFailure, "INFO gateway.run: Exiting with code 1 (signal-initiated shutdown without restart request) so systemd Restart=on-failure can revive the gateway.\n"},
		{"planned SIGTERM", syscall.SIGTERM, true, exitOK, "INFO gateway.run: Received SIGTERM as a planned gateway stop — exiting cleanly\n"},
		{"SIGINT", syscall.SIGINT, false, exitOK, "INFO gateway.run: Received SIGINT as a planned gateway stop — exiting cleanly\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			writeFile(t, filepath.Join(home, "config.yaml"), "standin:\n  stop_delay_ms: 1\n")
			g := startInProcess(t, baseEnv(home), "gateway", "run", "--verbose")
			poll.WaitOn(t, g.running(home), waitOpts...)
			if tc.planned {
				writeMarker(t, filepath.Join(home, plannedStopMarkerFile), os.Getpid(), time.Second)
			}
			signalSelf(t, tc.sig)
			assert.Equal(t, g.wait(t), tc.code)
			assert.Check(t, is.Contains(g.stderr.String(), tc.log))
			assert.Check(t, is.Contains(g.stderr.String(), "[stand-in hook] standin.stop_delay_ms: waited 1ms\n"))
			assert.Check(t, is.Equal(readRuntimeStatus(home)["gateway_state"], "stopped"))
			assert.Check(t, !fileExists(filepath.Join(home, plannedStopMarkerFile)))
			assert.Check(t, !fileExists(filepath.Join(home, pidFileName)))
		})
	}
}

// The stand-in hook POST /debug/crash answers 202 and ends the gateway with
// exit 70 at once: no graceful stop, so gateway.pid stays behind as after a
// real crash (the lock is released as the kernel would). Another signal
// than KILL is refused with 400 and changes nothing.
func TestGatewayInProcessCrashHook(t *testing.T) {
	home := t.TempDir()
	port := freePort(t)
	g := startInProcess(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run", "-q")
	poll.WaitOn(t, g.running(home), waitOpts...)
	poll.WaitOn(t, apiState(home, "connected"), waitOpts...)

	code, body, err := post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash?signal=TERM", port))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, http.StatusBadRequest))
	assert.Check(t, is.Contains(body, `unsupported signal "TERM": only KILL is supported`))
	assert.Check(t, !g.exited())

	code, body, err = post(fmt.Sprintf("http://127.0.0.1:%d/debug/crash", port))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, http.StatusAccepted))
	var answer map[string]any
	assert.NilError(t, json.Unmarshal([]byte(body), &answer))
	assert.Check(t, is.DeepEqual(answer, map[string]any{"status": "crashing", "pid": float64(os.Getpid()), "standin_hook": true, "exit_code": 70.0}))
	assert.Equal(t, g.wait(t), exitCrash)
	assert.Check(t, fileExists(filepath.Join(home, pidFileName)), "a crash leaves gateway.pid behind")
	assert.Check(t, is.Equal(readRuntimeStatus(home)["gateway_state"], "running"), "nobody recorded a stop")
	assert.Check(t, !lockHeld(home))
	assert.Check(t, is.Contains(g.stderr.String(), "[stand-in hook] POST /debug/crash: exiting with code 70\n"))
	// -q silences the gateway's own log, never the hooks' lines.
	assert.Check(t, !strings.Contains(g.stderr.String(), "gateway.run:"))
}

// An enabled API server whose key the startup guard refuses, or whose port
// is taken, is recorded as retrying in gateway_state.json while the gateway
// keeps running; a freed port is taken on a later attempt.
func TestGatewayInProcessAPIServerRetries(t *testing.T) {
	guardSignals(t)
	t.Run("refused key", func(t *testing.T) {
		home := t.TempDir()
		g := startInProcess(t, baseEnv(home, "API_SERVER_ENABLED=yes", "API_SERVER_KEY=short"), "gateway", "run")
		poll.WaitOn(t, g.running(home), waitOpts...)
		poll.WaitOn(t, apiState(home, "retrying"), waitOpts...)
		api := readRuntimeStatus(home)["platforms"].(map[string]any)["api_server"].(map[string]any)
		assert.Check(t, is.Equal(api["error_message"], "API_SERVER_KEY is required"))
		signalSelf(t, syscall.SIGINT)
		assert.Equal(t, g.wait(t), exitOK)
		assert.Check(t, is.Contains(g.stderr.String(), "WARNING gateway.run: ✗ api_server failed to connect\n"))
	})
	t.Run("busy port", func(t *testing.T) {
		home := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		assert.NilError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		g := startInProcess(t, baseEnv(home, "API_SERVER_KEY="+usableKey, "API_SERVER_PORT="+strconv.Itoa(port)), "gateway", "run", "-v")
		poll.WaitOn(t, g.running(home), waitOpts...)
		poll.WaitOn(t, apiState(home, "retrying"), waitOpts...)
		assert.Check(t, is.Contains(g.stderr.String(), fmt.Sprintf("[Api_Server] Port %d already in use.", port)))
		assert.NilError(t, ln.Close())
		poll.WaitOn(t, apiState(home, "connected"), waitOpts...)
		code, _, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(code, http.StatusOK))
		assert.Check(t, is.Contains(g.stderr.String(), "INFO gateway.run: Reconnecting api_server...\n"))
		signalSelf(t, syscall.SIGINT)
		assert.Equal(t, g.wait(t), exitOK)
	})
}
