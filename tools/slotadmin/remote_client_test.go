package slotadmin

// Remote, the client hermes uses, where it cannot ask, and Prepare where
// it cannot make the directory.

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A Remote without a socket path asks the image's own socket, Socket.
func TestRemoteDefaultsToTheImagesSocket(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(Socket); err == nil {
		t.Skip(Socket + " exists on this host")
	}
	err := Remote{}.Unregister("work")
	assert.Check(t, is.ErrorContains(err, "not reachable at "+Socket))
}

// Without s6-sudo on PATH the request cannot be asked: an error that says
// so, not an exit code.
func TestRemoteWithoutS6Sudo(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "socket")
	assert.NilError(t, os.WriteFile(sock, nil, 0o600))
	t.Setenv("PATH", t.TempDir())
	err := Remote{Socket: sock}.Register("work")
	assert.Check(t, is.ErrorContains(err, "asking the slot service: "))
	var ee *ExitError
	assert.Check(t, !errors.As(err, &ee))
}

// Prepare on a path it cannot make is an error; what was in the way is left
// as it was.
func TestPrepareFailsWithoutChangingWhatIsInTheWay(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(file, []byte("keep"), 0o644))
	err := Prepare(filepath.Join(file, "admin"), 0)
	assert.Check(t, is.ErrorContains(err, file))
	b, err := os.ReadFile(file)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "keep"))
}
