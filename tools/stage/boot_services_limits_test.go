package stage

// BootServices under s6-overlay's stage-2 knobs: S6_CMD_WAIT_FOR_SERVICES_MAXTIME
// bounds every start (s6-rc.c: compute_timeout), S6_BEHAVIOUR_IF_STAGE2_FAILS
// ≥ 2 stops the container when a service fails (rc.init), and a start that
// crashes is reported as s6-rc reports it.

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// bootTree lays the image-like tree with main-hermes in the user bundle and
// an s6-svc stand-in that records its calls and runs fail for the services
// whose directory ends in failing.
func bootTree(t *testing.T, failing, fail string) (Paths, string) {
	t.Helper()
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	write(t, filepath.Join(bin, "s6-svc"), "#!/bin/sh\necho \"s6-svc $*\" >> "+calls+"\ncase \"$*\" in -u*/"+failing+") "+fail+" ;; esac\n", 0o755)
	p := testPaths(t, bin)
	rcTree(t, p.RcD)
	write(t, filepath.Join(p.RcD, "user", "contents.d", "main-hermes"), "", 0o644)
	assert.NilError(t, LayServices(p))
	supervised(t, p)
	t.Setenv("S6_VERBOSITY", "2")
	return p, calls
}

func TestBootServicesBoundsEachStartByTheGlobalDeadline(t *testing.T) {
	p, calls := bootTree(t, "none", "exit 1")
	t.Setenv("S6_BEHAVIOUR_IF_STAGE2_FAILS", "")
	t.Setenv("S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "600000")

	var code int
	captureStderr(t, func() { code = BootServices(p, func() {}) })
	assert.Check(t, is.Equal(code, 0))

	// Without its own timeout-up a start gets what is left of the 600 s;
	// main-hermes's timeout-up (4000 ms) is shorter and stays.
	timeouts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(read(t, calls)), "\n") {
		f := strings.Fields(line) // s6-svc -uwu -T N -- DIR
		assert.Assert(t, len(f) == 6 && f[2] == "-T", line)
		n, err := strconv.Atoi(f[3])
		assert.NilError(t, err)
		timeouts[filepath.Base(f[5])] = n
	}
	assert.Check(t, is.Equal(timeouts["main-hermes"], 4000))
	left := timeouts[OneshotRunner]
	assert.Check(t, left > 4000 && left <= 600000, "oneshot runner got -T %d", left)
}

func TestBootServicesStopsTheContainerWhenAskedTo(t *testing.T) {
	p, calls := bootTree(t, "main-hermes", "exit 1")
	t.Setenv("S6_BEHAVIOUR_IF_STAGE2_FAILS", "2")
	t.Setenv("S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "")

	var code int
	log := captureStderr(t, func() { code = BootServices(p, func() {}) })
	assert.Check(t, is.Equal(code, 1))
	assert.Check(t, is.Contains(log, p.RcInit+": warning: s6-rc failed to properly bring all the services up!"))
	assert.Check(t, is.Contains(log, p.RcInit+": fatal: stopping the container.\n"))
	assert.Check(t, is.Contains(read(t, calls), "s6-svc -d -- "+filepath.Join(p.LiveDir, "servicedirs", "main-hermes")+"\n"), "the failed service is sent down again")
}

func TestBootServicesReportsAStartThatCrashed(t *testing.T) {
	p, _ := bootTree(t, "main-hermes", "kill -KILL $$")
	t.Setenv("S6_BEHAVIOUR_IF_STAGE2_FAILS", "1")
	t.Setenv("S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "")

	var code int
	log := captureStderr(t, func() { code = BootServices(p, func() {}) })
	assert.Check(t, is.Equal(code, 0), "S6_BEHAVIOUR_IF_STAGE2_FAILS=1 only warns")
	assert.Check(t, is.Contains(log, "s6-rc: warning: unable to start service main-hermes: command crashed with signal 9\n"))
	assert.Check(t, is.Contains(log, "warning: s6-rc failed to properly bring all the services up!"))
	assert.Check(t, !strings.Contains(log, "fatal: stopping the container"))
}
