package slotadmin

// Remote, the client hermes uses, against a real admin service (s6's
// s6-ipcserver, s6-ipcserver-access, s6-sudod) whose handler stands in for
// `hermes-s6 slot-admin`.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// remoteHandler answers like `slot-admin`: 0 done, 2 refused, 1 failed,
// saying so on stderr; it says what it was asked on stdout.
const remoteHandler = `#!/bin/sh
echo "asked $2 $3"
case "$3" in
refuse) echo "refused: bad name" >&2; exit 2 ;;
fail) echo "failed: s6 said no" >&2; exit 1 ;;
esac
exit 0
`

// startAdminService runs the admin service of ServerArgv on a fresh
// directory and returns its socket.
func startAdminService(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("Prepare chowns the directory: needs root")
	}
	if _, err := exec.LookPath("s6-ipcserver"); err != nil {
		t.Skip("s6 is not installed: ", err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "admin")
	assert.NilError(t, Prepare(dir, 0))
	tool := filepath.Join(root, "tool")
	assert.NilError(t, os.WriteFile(tool, []byte(remoteHandler), 0o755))
	argv := ServerArgv(tool, dir)
	srv := exec.Command(argv[0], argv[1:]...)
	assert.NilError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	sock := filepath.Join(dir, "socket")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if _, err := os.Stat(sock); err == nil {
			return poll.Success()
		}
		return poll.Continue("no socket yet")
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
	return sock
}

// The service's answer becomes Remote's: done is nil, refused and failed
// are ExitErrors with the code (the service has already said why, on the
// caller's stderr), and the handler's output reaches the caller.
func TestRemoteCarriesTheServicesAnswer(t *testing.T) {
	t.Parallel()
	sock := startAdminService(t)
	var out, errOut bytes.Buffer
	r := Remote{Socket: sock, Stdout: &out, Stderr: &errOut, Timeout: 10 * time.Second}

	assert.NilError(t, r.Register("work"))
	assert.NilError(t, r.Unregister("work"))
	assert.Check(t, is.Equal(out.String(), "asked register work\nasked unregister work\n"))

	var ee *ExitError
	err := r.Register("refuse")
	assert.Assert(t, errors.As(err, &ee), "%v", err)
	assert.Check(t, is.Equal(ee.Code, 2))
	assert.Check(t, is.Error(err, "the slot service refused the request"))
	err = r.Unregister("fail")
	assert.Assert(t, errors.As(err, &ee), "%v", err)
	assert.Check(t, is.Equal(ee.Code, 1))
	assert.Check(t, is.Error(err, "the slot service failed (exit 1)"))
	assert.Check(t, is.Equal(errOut.String(), "refused: bad name\nfailed: s6 said no\n"))
}

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
