package reconcile

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/s6"
)

var pollOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(20 * time.Millisecond)}

// needS6 skips a test that runs s6 programs when s6 is not installed.
func needS6(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("s6-svscan"); err != nil {
		t.Skip("s6 is not installed (apt-get install s6): ", err)
	}
}

// liveScan starts a real s6-svscan on a temporary scan directory and returns
// a Manager for it and an empty HERMES_HOME.
func liveScan(t *testing.T) (*s6.Manager, string) {
	t.Helper()
	needS6(t)
	root := t.TempDir()
	scan := filepath.Join(root, "service")
	home := filepath.Join(root, "home")
	assert.NilError(t, os.MkdirAll(scan, 0o755))
	assert.NilError(t, os.MkdirAll(home, 0o755))
	cmd := exec.Command("s6-svscan", scan)
	cmd.Env = append(os.Environ(), "HERMES_HOME="+home)
	assert.NilError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		exec.Command("s6-svscanctl", "-t", scan).Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if err := exec.Command("s6-svscanctl", "-a", scan).Run(); err != nil {
			return poll.Continue("s6-svscan not ready: %v", err)
		}
		return poll.Success()
	}, pollOpts...)
	return s6.New(scan), home
}
