package standin

// profile delete with the profile's gateway running (hermes_cli/profiles.py
// delete_profile, _stop_gateway_process): the summary warns, the gateway is
// stopped through its gateway.pid (SIGTERM), then the profile is removed.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

func TestProfileDeleteStopsTheProfilesGateway(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "profiles", "work")
	writeFile(t, filepath.Join(dir, "config.yaml"), "model:\n  model: other/model\n  provider: nous\n")
	gw := startAgent(t, baseEnv(dir), "gateway", "run", "-v")
	poll.WaitOn(t, gw.running(dir), waitOpts...)

	f := newFakeSys(t, "HERMES_HOME="+root)
	assert.Equal(t, f.main("profile", "delete", "work", "--yes"), exitOK, f.stdout.String())
	out := f.stdout.String()
	assert.Check(t, is.Contains(out, "Model:   other/model (nous)\n"))
	assert.Check(t, is.Contains(out, "  ⚠ Gateway is running — it will be stopped.\n"))
	assert.Check(t, is.Contains(out, fmt.Sprintf("✓ Gateway stopped (PID %d)\n", gw.pid())))
	assert.Check(t, is.Contains(out, "\nProfile 'work' deleted.\n"))
	// An unplanned SIGTERM: the gateway exits 1, as the real one does.
	assert.Check(t, is.Equal(gw.waitExit(t), 1))
	_, err := os.Stat(dir)
	assert.Check(t, os.IsNotExist(err))
}

// A gateway.pid naming a process that is gone is no running gateway: no
// warning, nothing to stop, the profile is deleted.
func TestProfileDeleteWithAStaleGatewayPid(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "profiles", "work")
	writeFile(t, filepath.Join(dir, pidFileName), `{"pid": 999999999, "kind": "hermes-gateway"}`)
	f := newFakeSys(t, "HERMES_HOME="+root)
	assert.Equal(t, f.main("profile", "delete", "-y", "work"), exitOK)
	assert.Check(t, !strings.Contains(f.stdout.String(), "⚠ Gateway") && !strings.Contains(f.stdout.String(), "✓ Gateway"), f.stdout.String())
	_, err := os.Stat(dir)
	assert.Check(t, os.IsNotExist(err))
}

// stopGatewayProcess on a pid that is already gone says so.
func TestStopGatewayProcessOfAGoneProcess(t *testing.T) {
	t.Parallel()
	f := newFakeSys(t)
	f.stopGatewayProcess(999999999)
	assert.Check(t, is.Equal(f.stdout.String(), "✓ Gateway already stopped\n"))
}
