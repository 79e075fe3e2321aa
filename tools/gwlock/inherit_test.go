package gwlock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// After Inherit, a child started from this process gets the descriptor and
// holds the lock after the parent lets go of it; the lock ends with the child.
func TestAnInheritedLockLivesAsLongAsTheChild(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	assert.NilError(t, l.TryLock())
	assert.NilError(t, l.Inherit())
	child := exec.Command("/bin/sleep", "600")
	assert.NilError(t, child.Start())
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", child.Process.Pid, l.Fd()))
	assert.NilError(t, err, "the child has the descriptor")
	assert.Check(t, is.Equal(target, filepath.Join(dir, FileName)))
	assert.NilError(t, l.Close())

	probe, err := Open(dir, ".", false)
	assert.NilError(t, err)
	defer probe.Close()
	assert.Check(t, probe.Held(), "the child holds it")
	assert.Check(t, is.Equal(probe.TryLock(), ErrHeld))

	assert.NilError(t, child.Process.Kill())
	child.Wait()
	assert.Check(t, !probe.Held(), "released with the child")
}

// Without Inherit the descriptor stays close-on-exec: a child gets nothing.
func TestALockIsNotInheritedByDefault(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	assert.NilError(t, l.TryLock())
	child := exec.Command("/bin/sleep", "600")
	assert.NilError(t, child.Start())
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	_, err = os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", child.Process.Pid, l.Fd()))
	assert.Check(t, os.IsNotExist(err), "the child has no such descriptor: %v", err)
	assert.NilError(t, l.Close())
	probe, err := Open(dir, ".", false)
	assert.NilError(t, err)
	defer probe.Close()
	assert.Check(t, !probe.Held())
}

// Record on a descriptor that cannot be written says which file.
func TestRecordOnAReadOnlyDescriptor(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	l.Close()
	ro, err := Open(dir, ".", false)
	assert.NilError(t, err)
	defer ro.Close()
	err = ro.Record(Self("default", time.Unix(0, 0)))
	if err == nil {
		t.Skip("Open(create=false) opens read-write here")
	}
	assert.Check(t, is.ErrorContains(err, "writing "+filepath.Join(dir, FileName)))
}
