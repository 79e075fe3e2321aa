package profile

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestListFailsWhenProfilesIsNotADirectory(t *testing.T) {
	home := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles"), nil, 0o644))
	names, _, err := List(home)
	assert.Check(t, err != nil)
	assert.Check(t, is.DeepEqual(names, []string{Default}), "default is always listed")
}

func TestUnreadableStateIsAnError(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Mkdir(filepath.Join(dir, StateFile), 0o755))
	_, err := ReadState(dir, Default)
	assert.Check(t, is.ErrorContains(err, "is a directory"))
}

func TestWriteStateThatCannotReplaceLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory where the state file goes: the rename fails.
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, StateFile, "x"), 0o755))
	err := WriteState(dir, Default, Running, -1, -1)
	assert.Check(t, is.ErrorContains(err, "recording desired state in "+dir))
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 1), "only the directory that was there")
}

func TestWriteStateChownFailure(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may give a file to anyone")
	}
	dir := t.TempDir()
	err := WriteState(dir, Default, Running, 0, 0)
	assert.Check(t, is.ErrorContains(err, "recording desired state in "+dir))
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "no temp file left")
}
