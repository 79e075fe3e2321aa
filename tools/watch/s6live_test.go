package watch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

var pollOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(20 * time.Millisecond)}

// liveScan starts a real s6-svscan on a temporary scan directory and returns
// a Manager for it and an empty HERMES_HOME.
func liveScan(t *testing.T) (*s6.Manager, string) {
	t.Helper()
	scan := s6test.Start(t)
	return s6.New(scan.Dir), scan.Home
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
