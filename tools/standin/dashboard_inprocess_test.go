package standin

// hermes dashboard in process (hermes_cli/web_server.py start_server,
// hermes_cli/subcommands/dashboard.py; see dashboard.go).

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// --port 0 picks a free port and the ready line names it; the page is served
// at / only; SIGTERM stops it cleanly (exit 0) and frees the port.
func TestDashboardInProcessServesUntilSIGTERM(t *testing.T) {
	guardSignals(t)
	d := startInProcess(t, baseEnv(t.TempDir()), "dashboard", "--host=127.0.0.1", "--port=0", "--tui")
	var port int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if d.exited() {
			return poll.Error(fmt.Errorf("exited %d: %s", d.code, d.stderr.String()))
		}
		if _, err := fmt.Sscanf(d.stdout.String(), "HERMES_DASHBOARD_READY port=%d\n", &port); err != nil {
			return poll.Continue("stdout %q", d.stdout.String())
		}
		return poll.Success()
	}, waitOpts...)
	assert.Assert(t, port != 0)

	code, body, hdr, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, http.StatusOK))
	assert.Check(t, is.Equal(hdr.Get("Content-Type"), "text/html; charset=utf-8"))
	assert.Check(t, is.Contains(body, "hermes-agent-standin, a test double"))
	code, _, _, err = get(fmt.Sprintf("http://127.0.0.1:%d/api/status", port))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, http.StatusNotFound), "the stand-in serves no dashboard API")

	signalSelf(t, syscall.SIGTERM)
	assert.Equal(t, d.wait(t), exitOK)
	assert.Check(t, !listening(port))
}

// A busy port is BACKEND_PORT_IN_USE on stdout and exit 75 (#93608); an
// address that cannot be bound for another reason is an ERROR and exit 1.
// A public bind with a provider from config.yaml passes the auth gate and
// gets as far as binding.
func TestDashboardInProcessBindFailures(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port

	d := startInProcess(t, baseEnv(t.TempDir()), "dashboard", "--port", strconv.Itoa(busy), "--no-open")
	assert.Equal(t, d.wait(t), exitRestart)
	assert.Check(t, is.Equal(d.stdout.String(), fmt.Sprintf("BACKEND_PORT_IN_USE port=%d\n", busy)))

	home := t.TempDir()
	writeFile(t, filepath.Join(home, "config.yaml"), "dashboard:\n  basic_auth:\n    username: admin\n    password: secret\n")
	// 192.0.2.1 (TEST-NET-1) is on no interface of this host.
	d = startInProcess(t, baseEnv(home), "dashboard", "--host", "192.0.2.1", "--port", "0")
	assert.Equal(t, d.wait(t), exitFailure)
	assert.Check(t, is.Contains(d.stderr.String(), "ERROR: listen tcp 192.0.2.1:0: "))
	assert.Check(t, !strings.Contains(d.stderr.String(), "Refusing to bind"), "the auth gate let it through")
}

// The dashboard's command line as argparse reads it: --help prints the
// usage (exit 0); a missing or bad value, or an unknown flag, is exit 2
// with the reason.
func TestDashboardCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--help"}, exitOK, dashboardUsage, ""},
		{[]string{"--port"}, exitUsage, "", "dashboard: error: argument --port: expected one argument\n"},
		{[]string{"--host"}, exitUsage, "", "dashboard: error: argument --host: expected one argument\n"},
		{[]string{"--port", "http"}, exitUsage, "", `argument --port: invalid int value: "http"` + "\n"},
		{[]string{"--port=65536"}, exitUsage, "", `argument --port: invalid int value: "65536"` + "\n"},
		{[]string{"--port=-1"}, exitUsage, "", `argument --port: invalid int value: "-1"` + "\n"},
		{[]string{"--stop"}, exitUsage, "", "dashboard: error: unrecognized arguments: --stop\n"},
	} {
		d := startInProcess(t, baseEnv(t.TempDir()), append([]string{"dashboard"}, tc.args...)...)
		assert.Check(t, is.Equal(d.wait(t), tc.code), "%q", tc.args)
		assert.Check(t, is.Equal(d.stdout.String(), tc.stdout), "%q", tc.args)
		assert.Check(t, is.Contains(d.stderr.String(), tc.stderr), "%q", tc.args)
	}
}
