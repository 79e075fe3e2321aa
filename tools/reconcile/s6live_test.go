package reconcile

import (
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// liveScan starts a real s6-svscan on a temporary scan directory and returns
// a Manager for it and an empty HERMES_HOME.
func liveScan(t *testing.T) (*s6.Manager, string) {
	t.Helper()
	scan := s6test.Start(t)
	return s6.New(scan.Dir), scan.Home
}
