package watch

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

// liveScan starts a real s6-svscan on a temporary scan directory and returns
// a Manager for it and an empty HERMES_HOME.
func liveScan(t *testing.T) (*s6.Manager, string) {
	t.Helper()
	if _, err := exec.LookPath("s6-svscan"); err != nil {
		t.Skip("s6 is not installed (apt-get install s6): ", err)
	}
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

// standInGateway writes what the slots run instead of the real front: it
// exits with the code in $HERMES_HOME/exit-NAME if that file exists, and
// otherwise stays up until it is stopped.
func standInGateway(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "front")
	script := `#!/bin/sh
name=default
[ "$1" = -p ] && name="$2"
if [ -f "$HERMES_HOME/exit-$name" ]; then exit "$(cat "$HERMES_HOME/exit-$name")"; fi
exec sleep 1000
`
	assert.NilError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}
