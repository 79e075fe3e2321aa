package cmdline

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Ownership is what the boot reconciler reads from the container's CMD: a
// foreground gateway (opted out of supervision by flag or variable) owns its
// profile's slot; a dashboard-only CMD runs no gateway at all; anything else,
// including a CMD that cannot be read, owns nothing.
func TestOwnershipOfTheContainersCMD(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	none := env(nil)
	optedOut := env(map[string]string{NoSuperviseEnv: "Yes"})
	for _, tc := range []struct {
		cmd        []string
		getenv     func(string) string
		owner      string
		noGateways bool
	}{
		{[]string{"hermes", "gateway", "run", "--no-supervise"}, none, "default", false},
		{[]string{"/opt/hermes/bin/hermes", "-p", "work", "gateway", "run", "-v", "--no-supervise"}, none, "work", false},
		{[]string{"gateway", "run"}, optedOut, "default", false},
		{[]string{"--profile=work", "gateway", "run"}, optedOut, "work", false},
		// The last profile option wins, for the front and the reconciler alike.
		{[]string{"--profile=a", "-p", "b", "gateway", "run", "--no-supervise"}, none, "b", false},
		{[]string{"gateway", "run"}, none, "", false},
		{[]string{"gateway", "run"}, env(map[string]string{NoSuperviseEnv: "on"}), "", false},
		{[]string{"gateway", "run", "--", "--no-supervise"}, none, "", false},
		{[]string{"gateway", "status", "--no-supervise"}, none, "", false},
		{[]string{"dashboard"}, none, "", true},
		{[]string{"hermes", "-p", "work", "dashboard", "--port", "9119"}, optedOut, "", true},
		{[]string{"-p", "Not A Name", "gateway", "run", "--no-supervise"}, none, "", false},
		{[]string{"-p"}, optedOut, "", false},
		{[]string{"hermes"}, optedOut, "", false},
		{nil, optedOut, "", false},
	} {
		owner, noGateways := Ownership(tc.cmd, tc.getenv)
		assert.Check(t, is.Equal(owner, tc.owner), "%q", tc.cmd)
		assert.Check(t, is.Equal(noGateways, tc.noGateways), "%q", tc.cmd)
	}
}
