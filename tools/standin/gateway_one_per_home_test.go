package standin

// One gateway per HERMES_HOME (gateway/status.py get_running_pid, the
// runtime lock; hermes_cli/gateway.py run_gateway's
// _guard_existing_gateway_process_conflict; gateway/run.py start_gateway's
// --replace): a second one is refused with exit 1 and leaves the first
// alone; --replace takes over with a takeover marker, so the first exits 0.

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

func TestSecondGatewayInProcessIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		env    []string
		stdout string
	}{
		// Not supervised: run_gateway's guard answers first.
		{"unsupervised", nil, "✗ Another gateway instance is already running (PID %d).\n"},
		// Under a supervisor that guard is skipped; start_gateway refuses.
		{"under s6", []string{"HERMES_S6_SUPERVISED_CHILD=1"}, "\n❌ Gateway already running (PID %d).\n"},
		{"external supervisor", []string{"HERMES_GATEWAY_EXTERNAL_SUPERVISOR=on"}, "\n❌ Gateway already running (PID %d).\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			first := startAgent(t, baseEnv(home), "gateway", "run")
			poll.WaitOn(t, first.running(home), waitOpts...)

			second := startInProcess(t, baseEnv(home, tc.env...), "gateway", "run", "--no-supervise")
			assert.Equal(t, second.wait(t), exitFailure)
			assert.Check(t, is.Contains(second.stdout.String(), fmt.Sprintf(tc.stdout, first.pid())))
			assert.Check(t, !first.exited(), "the first gateway is left alone")
			assert.Check(t, is.Equal(readJSON(t, filepath.Join(home, pidFileName))["pid"], float64(first.pid())))
			assert.Check(t, is.Equal(readRuntimeStatus(home)["pid"], float64(first.pid())))
			assert.Check(t, lockHeld(home))
		})
	}
}

func TestGatewayInProcessReplacesTheRunningOne(t *testing.T) {
	guardSignals(t)
	home := t.TempDir()
	first := startAgent(t, baseEnv(home), "gateway", "run", "-v")
	poll.WaitOn(t, first.running(home), waitOpts...)

	second := startInProcess(t, baseEnv(home), "gateway", "run", "--replace", "-v")
	poll.WaitOn(t, second.running(home), waitOpts...)
	assert.Check(t, is.Equal(first.waitExit(t), 0), "a takeover is a clean stop")
	assert.Check(t, is.Contains(first.stderr.String(), "Received SIGTERM as a planned --replace takeover — exiting cleanly"))
	assert.Check(t, is.Contains(second.stderr.String(), fmt.Sprintf("INFO gateway.run: Replacing existing gateway instance (PID %d) with --replace.\n", first.pid())))
	assert.Check(t, !fileExists(filepath.Join(home, takeoverMarkerFile)), "the marker is cleared")
	assert.Check(t, is.Equal(runningPID(home), syscall.Getpid()))

	signalSelf(t, syscall.SIGINT)
	assert.Equal(t, second.wait(t), exitOK)
}

// A gateway.pid that names a process that is gone, or no lock holder, is
// stale: a new gateway starts over it and --replace has nothing to stop.
func TestGatewayInProcessReplaceWithNobodyRunning(t *testing.T) {
	guardSignals(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, pidFileName), `{"pid": 999999999, "kind": "hermes-gateway"}`)
	g := startInProcess(t, baseEnv(home), "gateway", "run", "--replace", "-v")
	poll.WaitOn(t, g.running(home), waitOpts...)
	assert.Check(t, is.Equal(readJSON(t, filepath.Join(home, pidFileName))["pid"], float64(syscall.Getpid())))
	assert.Check(t, !strings.Contains(g.stderr.String(), "Replacing existing gateway"))
	signalSelf(t, syscall.SIGINT)
	assert.Equal(t, g.wait(t), exitOK)
}
