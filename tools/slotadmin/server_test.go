package slotadmin

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// As root the server prepares the socket directory for the hermes group,
// then execs s6-ipcserver; one that cannot be found is a clear failure (111,
// s6's "cannot run" code), the directory left prepared.
func TestServerAsRootPreparesTheDirectoryThenNeedsS6IPCServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "hermes-admin")
	var stderr bytes.Buffer
	s := Server{Dir: dir, Tool: "/usr/local/bin/hermes-s6", GID: 4242, Euid: 0, Path: t.TempDir(), Stderr: &stderr, NotifyFD: -1}
	assert.Check(t, is.Equal(s.Run(), 111))
	assert.Check(t, is.Contains(stderr.String(), "hermes-admin: cannot run s6-ipcserver: executable file not found in $PATH"))
	st, err := os.Stat(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o750)))
	assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Gid), 4242))
}

func TestServerReportsADirectoryItCannotPrepare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	file := filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	var stderr bytes.Buffer
	s := Server{Dir: filepath.Join(file, "sub"), GID: 1, Stderr: &stderr, NotifyFD: -1}
	assert.Check(t, is.Equal(s.Run(), 111))
	assert.Check(t, is.Contains(stderr.String(), "hermes-admin: "))
}

// Not root (a --user container): nothing to serve. The server says so,
// reports ready on the notification fd and idles until stopped.
func TestServerNotRootIsReadyAndIdle(t *testing.T) {
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGTERM)
	defer signal.Stop(guard)

	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	// Run closes the notification fd, as s6 hands it over: give it a
	// duplicate, so that w's own close (or finalizer) never closes an fd
	// number another test has reused meanwhile.
	notify, err := syscall.Dup(int(w.Fd()))
	assert.NilError(t, err)
	assert.NilError(t, w.Close())
	var stderr bytes.Buffer
	s := Server{Euid: 10000, Stderr: &stderr, NotifyFD: notify}
	done := make(chan int, 1)
	go func() { done <- s.Run() }()
	ready := make([]byte, 1)
	n, err := r.Read(ready)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(ready[:n]), "\n"), "ready")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case code := <-done:
			assert.Check(t, is.Equal(code, 0))
			return poll.Success()
		default:
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return poll.Continue("still idle")
		}
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(20*time.Millisecond))
	assert.Check(t, is.Equal(stderr.String(), "hermes-admin: not root (uid 10000): every process runs as this user, nothing to serve\n"))
}
