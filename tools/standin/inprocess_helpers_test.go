package standin

// Helpers to run the stand-in's long-running commands (gateway run,
// dashboard) inside the test process, so that what they do is measured by
// `go test -cover` too. Signals go to the test process itself: the tests that
// send them are not parallel (they run before the parallel ones start), and
// guardSignals keeps a signal that arrives before the command listens from
// ending the test binary.

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/syncbuf"
)

// guardSignals catches the stop signals for the duration of the test, so the
// runtime never applies their default action (ending the process).
func guardSignals(t *testing.T) {
	t.Helper()
	c := make(chan os.Signal, 16)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	t.Cleanup(func() { signal.Stop(c) })
}

// inProcess is one System.Main call running in a goroutine.
type inProcess struct {
	sys            *System
	stdout, stderr syncbuf.Buffer
	done           chan struct{}
	code           int
}

// startInProcess runs the stand-in with env (nothing else of the test's
// environment) on a root without s6.
func startInProcess(t *testing.T, env []string, args ...string) *inProcess {
	t.Helper()
	p := &inProcess{done: make(chan struct{})}
	p.sys = &System{
		Args0:   "/opt/hermes/bin/hermes-agent",
		Environ: env,
		Stdin:   strings.NewReader(""),
		Stdout:  &p.stdout,
		Stderr:  &p.stderr,
		Root:    t.TempDir(),
		Run:     runProgram,
		Exec:    func(string, []string, []string) error { return fmt.Errorf("exec refused in tests") },
		Block:   func() int { return 143 },
	}
	go func() {
		defer close(p.done)
		p.code = p.sys.Main(args)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("in-process %q stdout:\n%s\nstderr:\n%s", args, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

func (p *inProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait polls until Main has returned and gives its exit code.
func (p *inProcess) wait(t *testing.T) int {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if p.exited() {
			return poll.Success()
		}
		return poll.Continue("still running")
	}, waitOpts...)
	return p.code
}

// running polls until gateway_state.json says running for this process.
func (p *inProcess) running(home string) poll.Check {
	return func(poll.LogT) poll.Result {
		if p.exited() {
			return poll.Error(fmt.Errorf("exited early (%d); stderr: %s", p.code, p.stderr.String()))
		}
		st := readRuntimeStatus(home)
		if st == nil || st["gateway_state"] != "running" || st["pid"] != float64(os.Getpid()) {
			return poll.Continue("gateway_state.json is %v", st)
		}
		return poll.Success()
	}
}

// apiState polls until gateway_state.json's platforms.api_server.state is
// want.
func apiState(home, want string) poll.Check {
	return func(poll.LogT) poll.Result {
		st := readRuntimeStatus(home)
		platforms, _ := st["platforms"].(map[string]any)
		api, _ := platforms["api_server"].(map[string]any)
		if api["state"] != want {
			return poll.Continue("platforms.api_server is %v", api)
		}
		return poll.Success()
	}
}

// signalSelf sends sig to the test process; the in-process command must be
// listening (guardSignals catches it otherwise).
func signalSelf(t *testing.T, sig syscall.Signal) {
	t.Helper()
	assert.NilError(t, syscall.Kill(os.Getpid(), sig))
}
