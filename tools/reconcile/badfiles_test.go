package reconcile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/hermes-agent/hermes-s6/tools/gwlock"
	"github.com/hermes-agent/hermes-s6/tools/profile"
)

// Each bad desired-state file means down, with a line that says which file
// and why; the file is left as it was, and a second boot decides the same
// (no crash, no loop). A bad config.yaml or .env is not the reconciler's
// business: the slot is restored from its state all the same.
func TestBadStateFilesMeanDownWithAReasonAndStayAsTheyWere(t *testing.T) {
	m, home := liveScan(t)
	bad := map[string]string{
		"truncated": `{"desired_state":"runn`,
		"empty":     "",
		"binary":    "\x00\x01\xff\xfe\x89PNG\r\n",
		"huge":      `{"desired_state":"running","pad":"` + strings.Repeat("x", 1<<20) + `"}`,
		"wrongtype": `{"desired_state":true}`,
	}
	reasons := map[string]string{
		"truncated": "unexpected end of JSON input",
		"empty":     "unexpected end of JSON input",
		"binary":    "invalid character",
		"huge":      "larger than 1048576 bytes",
		"wrongtype": "desired_state true is neither",
	}
	for name, body := range bad {
		addProfile(t, home, name, "")
		assert.NilError(t, os.WriteFile(filepath.Join(profile.Dir(home, name), profile.StateFile), []byte(body), 0o644))
	}
	// Bad files of the agent's: the state decides.
	ok := addProfile(t, home, "odd-config", `{"desired_state":"running"}`)
	assert.NilError(t, os.WriteFile(filepath.Join(ok, "config.yaml"), bytes.Repeat([]byte{0xff, 0}, 1<<20), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(ok, ".env"), []byte("\x00\x00API_SERVER_PORT"), 0o600))

	for boot := 1; boot <= 2; boot++ {
		r, log := newReconciler(m, home, nil, nil)
		got := byProfile(r.Run())
		for name, body := range bad {
			p := filepath.Join(profile.Dir(home, name), profile.StateFile)
			o := got[name]
			assert.Check(t, is.Equal(o.Action, "down"), "boot %d: %s", boot, name)
			assert.Check(t, is.Contains(o.Reason, "corrupt state file "+p+": "), "boot %d: %s", boot, name)
			assert.Check(t, is.Contains(o.Reason, reasons[name]), "boot %d: %s", boot, name)
			assert.Check(t, len(o.Reason) < 300, "one short line: %q", o.Reason)
			b, err := os.ReadFile(p)
			assert.NilError(t, err)
			assert.Check(t, string(b) == body, "boot %d: %s is left as it was", boot, name)
			wantUp, down := slotState(t, m, "gateway-"+name)
			assert.Check(t, !wantUp && down, "boot %d: %s must be down", boot, name)
		}
		assert.Check(t, is.Equal(got["odd-config"].Action, "started"), "boot %d", boot)
		assert.Check(t, is.Equal(strings.Count(log.String(), "corrupt state file"), len(bad)), "one line each:\n%s", log)
	}
}

// A pid file whose gateway runs in another container on the volume (its
// gateway lock is held) is not stale, whatever this pid namespace says.
func TestPidFileOfAGatewayInAnotherContainerIsKept(t *testing.T) {
	m, home := liveScan(t)
	dir := addProfile(t, home, "work", `{"desired_state":"running"}`)
	pidFile := filepath.Join(dir, profile.PidFile)
	assert.NilError(t, os.WriteFile(pidFile, []byte(`{"pid": 999999999}`), 0o644))
	l, err := gwlock.Open(dir, ".", true)
	assert.NilError(t, err)
	assert.NilError(t, l.TryLock())
	assert.NilError(t, l.Record(gwlock.Holder{Host: "elsewhere", PidNS: "pid:[1]", Pid: 999999999, Since: time.Now().UTC().Format(time.RFC3339)}))

	r, log := newReconciler(m, home, nil, nil)
	r.Run()
	_, err = os.Stat(pidFile)
	assert.Check(t, err, "kept while the lock is held")
	assert.Check(t, is.Contains(log.String(), "hermes-reconcile: work: pid file kept: the profile's gateway lock is held (another container on this volume runs it)\n"))

	l.Close()
	r, _ = newReconciler(m, home, nil, nil)
	r.Run()
	_, err = os.Stat(pidFile)
	assert.Check(t, os.IsNotExist(err), "stale once the lock is free")
}
