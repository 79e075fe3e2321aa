package reconcile

import (
	"os/exec"
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

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
	scan := s6test.Start(t)
	return s6.New(scan.Dir), scan.Home
}
