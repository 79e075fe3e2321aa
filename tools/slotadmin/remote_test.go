package slotadmin

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
)

// Remote through a real s6-ipcserver + s6-sudod (ServerArgv on a prepared
// directory), with a tool that answers as slot-admin would: the request
// arrives as `tool slot-admin VERB PROFILE`, its output reaches the caller,
// and its exit code becomes the error: 0 nil, 2 refused, 1 failed.
func TestRemoteAsksTheRealSuperServer(t *testing.T) {
	s6test.Need(t)
	if _, err := exec.LookPath("s6-ipcserver"); err != nil {
		t.Skip("s6-ipcserver is not installed: ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("Prepare needs root")
	}
	dir := filepath.Join(t.TempDir(), "admin")
	assert.NilError(t, Prepare(dir, os.Getegid()))
	tool := filepath.Join(t.TempDir(), "tool")
	assert.NilError(t, os.WriteFile(tool, []byte(`#!/bin/sh
echo "asked: $*"
case "$3" in
  refused) echo "no such profile" >&2; exit 2 ;;
  broken) exit 1 ;;
esac
`), 0o755))
	argv := ServerArgv(tool, dir)
	srv := exec.Command(argv[0], argv[1:]...)
	out, err := srv.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, srv.Start())
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// -1: s6-ipcserver writes a line once it listens.
	_, err = bufio.NewReader(out).ReadString('\n')
	assert.NilError(t, err, "s6-ipcserver announces readiness")

	var stdout, stderr bytes.Buffer
	r := Remote{Socket: filepath.Join(dir, "socket"), Stdout: &stdout, Stderr: &stderr}
	assert.NilError(t, r.Register("work"))
	assert.Check(t, is.Equal(stdout.String(), "asked: slot-admin register work\n"))
	assert.NilError(t, r.Unregister("work"))
	assert.Check(t, is.Contains(stdout.String(), "asked: slot-admin unregister work\n"))

	err = r.Register("refused")
	var ee *ExitError
	assert.Assert(t, errors.As(err, &ee), "%v", err)
	assert.Check(t, is.Equal(ee.Code, 2))
	assert.Check(t, is.Equal(err.Error(), "the slot service refused the request"))
	assert.Check(t, is.Equal(stderr.String(), "no such profile\n"), "the service's own message reaches the caller")

	err = r.Register("broken")
	assert.Check(t, is.Equal(err.Error(), "the slot service failed (exit 1)"))
}
