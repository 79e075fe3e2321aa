package front

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
)

func writeProfileFile(t *testing.T, home, name, file, body string) {
	t.Helper()
	mkProfile(t, home, name)
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles", name, file), []byte(body), 0o600))
}

func serverPort(t *testing.T, srv *httptest.Server) string {
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	assert.NilError(t, err)
	return port
}

func TestHealthAsksTheProfilesOwnGateway(t *testing.T) {
	home := t.TempDir()
	gateway := func(pid int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health/detailed" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, `{"status":"ok","platform":"hermes-agent","pid":%d}`, pid)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	good := gateway(100)
	// good: its port in its .env, its pid file names the server's pid.
	writeProfileFile(t, home, "good", ".env", "API_SERVER_PORT="+serverPort(t, good)+"\n")
	writeProfileFile(t, home, "good", "gateway.pid", `{"pid":100,"kind":"hermes-gateway"}`)
	// other: left on good's port, its own gateway does not listen there.
	writeProfileFile(t, home, "other", ".env", "API_SERVER_PORT="+serverPort(t, good)+"\n")
	writeProfileFile(t, home, "other", "gateway.pid", "200\n")
	// starting: no pid file yet.
	writeProfileFile(t, home, "starting", ".env", "API_SERVER_PORT="+serverPort(t, good)+"\n")
	closed := httptest.NewServer(http.NotFoundHandler())
	closedPort := serverPort(t, closed)
	closed.Close()
	writeProfileFile(t, home, "gone", ".env", "API_SERVER_PORT="+closedPort+"\n")
	writeProfileFile(t, home, "gone", "gateway.pid", "300\n")

	f := &Front{Getenv: envOf(map[string]string{"HERMES_HOME": home})}
	assert.Check(t, f.health("good"))
	assert.Check(t, is.ErrorContains(f.health("other"), "is served by pid 100, not by this gateway (pid 200)"))
	assert.Check(t, is.ErrorContains(f.health("starting"), "no gateway pid yet"))
	assert.Check(t, is.ErrorContains(f.health("gone"), "/health/detailed on port "+closedPort+": "))
}

func TestRunReturnsTheAgentsExitCode(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin"}
	code, err := run("/bin/sh", []string{"sh", "-c", "exit 3"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 3))

	code, err = run("/bin/sh", []string{"sh", "-c", "exit 0"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 0))

	code, err = run("/bin/sh", []string{"sh", "-c", "kill -TERM $$"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 128+int(syscall.SIGTERM)), "killed by a signal: 128+signal")

	_, err = run("/nonexistent/agent", []string{"agent"}, env)
	assert.Check(t, is.ErrorContains(err, "/nonexistent/agent"))
}

func TestBlockReturnsTheSignal(t *testing.T) {
	// Whatever happens, this process must not die of the signals below.
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)

	got := make(chan int, 1)
	go func() { got <- block() }()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case sig := <-got:
			assert.Check(t, is.Equal(sig, int(syscall.SIGINT)))
			return poll.Success()
		default:
			// block may not listen yet: ask again until it answers.
			syscall.Kill(os.Getpid(), syscall.SIGINT)
			return poll.Continue("block has not returned")
		}
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(20*time.Millisecond))
}

func TestNewIsWiredToTheSystem(t *testing.T) {
	f := New()
	assert.Check(t, is.Equal(f.S6.ScanDir, s6.DefaultScanDir))
	assert.Check(t, is.Equal(f.UnderS6, s6.UnderPID1("/proc", s6.DefaultScanDir)))
	assert.Check(t, f.Exec != nil && f.Run != nil && f.Block != nil && f.History != nil && f.Health != nil)
	assert.Check(t, is.Equal(f.Getenv("PATH"), os.Getenv("PATH")))
	if os.Geteuid() == 0 {
		local, ok := f.Admin.(slotadmin.Local)
		assert.Check(t, ok, "root registers slots itself: %T", f.Admin)
		assert.Check(t, local.Slot == nil && local.S6 == f.S6, "the production slots are render.GatewaySlot")
	} else {
		_, ok := f.Admin.(slotadmin.Remote)
		assert.Check(t, ok, "hermes asks the admin service: %T", f.Admin)
	}
	if os.Geteuid() != 0 {
		assert.Check(t, is.Equal(f.UID, -1), "only root writes files for the hermes user")
	} else if f.UID != -1 {
		assert.Check(t, is.Equal(strconv.Itoa(f.S6.Group), strconv.Itoa(f.GID)))
	}
	assert.Check(t, is.Len(f.History("gateway-none", 5), 0))
}
