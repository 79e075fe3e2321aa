package s6

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// StopSlots brings every slot down, and only the slots: their loggers keep
// running so that the slots' last words are logged.
func TestStopSlotsStopsEverySlotButNotTheLoggers(t *testing.T) {
	m, home := liveScan(t)
	front := fakeFront(t, home)
	for _, p := range []string{"a", "b"} {
		assert.NilError(t, m.Register(testSlot(t, front, p)))
		assert.NilError(t, m.Start("gateway-"+p))
	}
	for _, s := range []string{"gateway-a", "gateway-b"} {
		poll.WaitOn(t, statusIs(m, s, func(s Status) bool { return s.Up && s.Pid > 0 }, "up"), pollOpts...)
	}
	logger := filepath.Join("gateway-a", "log")
	poll.WaitOn(t, statusIs(m, logger, func(s Status) bool { return s.Up }, "up"), pollOpts...)

	m.Timeout = 10 * time.Second
	stopped, err := m.StopSlots()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(stopped, []string{"gateway-a", "gateway-b"}))
	for _, s := range stopped {
		st, err := m.Status(s)
		assert.NilError(t, err)
		assert.Check(t, !st.Up && !st.WantUp, "%s: %s", s, st)
	}
	st, err := m.Status(logger)
	assert.NilError(t, err)
	assert.Check(t, st.Up, "the logger stays up: %s", st)

	_, err = New(filepath.Join(t.TempDir(), "missing")).StopSlots()
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "no scan directory: said, nothing stopped")
}
