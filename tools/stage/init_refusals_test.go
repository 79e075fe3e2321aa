package stage

// Stage 1 stopping the boot: the reason on stderr, /init's exit code 111,
// stage 2 never started and s6-svscan never exec'd.

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A source s6-rc-compile would refuse stops the boot before stage 2 runs
// and before any service is linked into the scan directory.
func TestInitRefusesABadS6RcSourceBeforeStage2(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	ran := filepath.Join(t.TempDir(), "stage2-ran")
	write(t, p.Self, "#!/bin/sh\n: > "+ran+"\n", 0o755)
	longrunAt(t, p.RcD, "s6rc-mine")
	t.Setenv("S6_KEEP_ENV", "1")

	var code int
	log := captureStderr(t, func() { code = InitMain(p, []string{"hermes"}) })
	assert.Check(t, is.Equal(code, 111))
	assert.Check(t, is.Equal(log, "s6-stage: init: in "+p.RcD+": identifier s6rc-mine starts with reserved prefix\n"))
	_, err := os.Stat(ran)
	assert.Check(t, os.IsNotExist(err), "stage 2 ran")
	entries, err := os.ReadDir(p.ScanDir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "services linked: %v", entries)
}

// Without the multi-call binary stage 2 cannot start: said so, exit 111.
func TestInitStopsWhenStage2CannotStart(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir()) // p.Self does not exist
	t.Setenv("S6_KEEP_ENV", "1")

	var code int
	log := captureStderr(t, func() { code = InitMain(p, nil) })
	assert.Check(t, is.Equal(code, 111))
	assert.Check(t, is.Contains(log, "s6-stage: init: stage1: starting stage 2: "))
	target, err := os.Readlink(p.RcInit)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(target, p.Self), "rc.init names the binary that is missing")
}
