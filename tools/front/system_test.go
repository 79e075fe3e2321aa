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
	"strings"
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

	h := &Host{Getenv: envOf(nil)}
	assert.Check(t, h.Health(home, "good"))
	assert.Check(t, is.ErrorContains(h.Health(home, "other"), "is served by pid 100, not by this gateway (pid 200)"))
	assert.Check(t, is.ErrorContains(h.Health(home, "starting"), "no gateway pid yet"))
	assert.Check(t, is.ErrorContains(h.Health(home, "gone"), "/health/detailed on port "+closedPort+": "))
	// WaitServing: at once for a gateway that serves; Probe's error after
	// its window for one that does not.
	assert.Check(t, WaitServing(home, "good", envOf(nil), time.Minute))
	assert.Check(t, is.ErrorContains(WaitServing(home, "starting", envOf(nil), 30*time.Millisecond), "no gateway pid yet"))
}

func TestRunReturnsTheAgentsExitCode(t *testing.T) {
	env := []string{"PATH=/usr/bin:/bin"}
	code, err := (&Host{}).Run("/bin/sh", []string{"sh", "-c", "exit 3"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 3))

	code, err = (&Host{}).Run("/bin/sh", []string{"sh", "-c", "exit 0"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 0))

	code, err = (&Host{}).Run("/bin/sh", []string{"sh", "-c", "kill -TERM $$"}, env)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 128+int(syscall.SIGTERM)), "killed by a signal: 128+signal")

	_, err = (&Host{}).Run("/nonexistent/agent", []string{"agent"}, env)
	assert.Check(t, is.ErrorContains(err, "/nonexistent/agent"))
}

func TestBlockReturnsTheSignal(t *testing.T) {
	// Whatever happens, this process must not die of the signals below.
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)

	got := make(chan int, 1)
	go func() { got <- (&Host{}).WaitSignal() }()
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
	m, ok := f.S6.(*s6.Manager)
	assert.Assert(t, ok, "the supervisor is s6: %T", f.S6)
	assert.Check(t, is.Equal(m.ScanDir, s6.DefaultScanDir))
	assert.Check(t, is.Equal(f.UnderS6, s6.UnderPID1("/proc", s6.DefaultScanDir)))
	host, ok := f.Sys.(*Host)
	assert.Assert(t, ok, "the system is the host: %T", f.Sys)
	assert.Check(t, is.Equal(f.Getenv("PATH"), os.Getenv("PATH")))
	if os.Geteuid() == 0 {
		local, ok := f.Admin.(slotadmin.Local)
		assert.Check(t, ok, "root registers slots itself: %T", f.Admin)
		assert.Check(t, local.Slot == nil && local.S6 == m, "the production slots are render.GatewaySlot")
		assert.Check(t, (host.Hermes != nil) == (f.UID != -1), "root drops to hermes when there is one")
	} else {
		_, ok := f.Admin.(slotadmin.Remote)
		assert.Check(t, ok, "hermes asks the admin service: %T", f.Admin)
	}
	if os.Geteuid() != 0 {
		assert.Check(t, is.Equal(f.UID, -1), "only root writes files for the hermes user")
	} else if f.UID != -1 {
		assert.Check(t, is.Equal(strconv.Itoa(m.Group), strconv.Itoa(f.GID)))
	}
	assert.Check(t, is.Len(f.Sys.History("gateway-none", 5), 0))
}

func TestHistoryKeepsTheSlotsLastLines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "history.log")
	var b strings.Builder
	for i := range 8 {
		fmt.Fprintf(&b, "t%d gateway-a up %d\nt%d gateway-ab down %d\n", i, i, i, i)
	}
	assert.NilError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	assert.Check(t, is.DeepEqual(history(file, "gateway-a", 2), []string{"t6 gateway-a up 6", "t7 gateway-a up 7"}))
	assert.Check(t, is.Len(history(file, "gateway-none", 5), 0))
	assert.Check(t, is.Len(history(filepath.Join(t.TempDir(), "missing"), "gateway-a", 5), 0))
}

func TestHostBecomeHermesWithoutAnAccountDropsNothing(t *testing.T) {
	dropped, err := (&Host{}).BecomeHermes()
	assert.NilError(t, err)
	assert.Check(t, !dropped)
}
