package s6test

// How the helpers fail a test when they cannot do their job: with the
// reason, through the test's own Fatal. These tests change PATH, so they
// are not parallel.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// failingTB records what a helper reports through Fatal or Skip, and ends
// the helper's goroutine there as testing.T does.
type failingTB struct {
	testing.TB
	tempDir string
	fatal   string
	skipped string
}

func (f *failingTB) TempDir() string { return f.tempDir }
func (f *failingTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *failingTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

// call runs helper with f in its own goroutine, as a test function would,
// and returns once it has returned or been stopped.
func call(f *failingTB, helper func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(f)
	}()
	<-done
}

func fakeProgram(t *testing.T, dir, name, script string) {
	t.Helper()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
}

func TestNeedSkipsWithoutS6(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Need(tb) })
	assert.Check(t, is.Contains(f.skipped, "s6 is not installed (apt-get install s6)"))
	f = &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Start(tb) })
	assert.Check(t, is.Contains(f.skipped, "s6 is not installed"), "Start needs s6 too")
}

func TestStartFailsTheTestWhenItCannotStart(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	// An s6-svscan that is found but cannot be executed.
	fakeProgram(t, bin, "s6-svscan", "#!/nonexistent/interpreter\n")
	f := &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Start(tb) })
	assert.Check(t, is.Contains(f.fatal, "no such file or directory"))

	// A temporary directory it cannot make the scan directory in.
	blocker := filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(blocker, nil, 0o644))
	f = &failingTB{TB: t, tempDir: blocker}
	call(f, func(tb testing.TB) { Start(tb) })
	assert.Check(t, is.Contains(f.fatal, blocker))
}

func TestToolFailsTheTestWithGoBuildsOutput(t *testing.T) {
	bin := t.TempDir()
	fakeProgram(t, bin, "go", "#!/bin/sh\necho 'cannot build: disk full' >&2\nexit 1\n")
	t.Setenv("PATH", bin)
	// A fresh Tool for this test, and a fresh one again for the others.
	tool.once, tool.err, tool.path, tool.dir = sync.Once{}, nil, "", ""
	t.Cleanup(func() {
		os.RemoveAll(tool.dir)
		tool.once, tool.err, tool.path, tool.dir = sync.Once{}, nil, "", ""
	})
	f := &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Tool(tb) })
	assert.Check(t, is.Contains(f.fatal, "go build hermes-s6: exit status 1\ncannot build: disk full\n"))
	// Once failed, it stays failed for the rest of the process.
	f = &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Tool(tb) })
	assert.Check(t, is.Contains(f.fatal, "cannot build: disk full"))

	// No temporary directory to build into: that is the reason given.
	os.RemoveAll(tool.dir)
	tool.once, tool.err, tool.path, tool.dir = sync.Once{}, nil, "", ""
	missing := filepath.Join(t.TempDir(), "missing")
	t.Setenv("TMPDIR", missing)
	f = &failingTB{TB: t, tempDir: t.TempDir()}
	call(f, func(tb testing.TB) { Tool(tb) })
	assert.Check(t, is.Contains(f.fatal, missing))
}
