package watch

import (
	"testing"
	"time"
)

// With an idle scan an hour away, only inotify can wake the watcher: every
// report of these scenarios comes from a change it was told about.

func TestWatcherFollowsACrashingSlotOnInotify(t *testing.T) { followsACrashingSlot(t, time.Hour) }

func TestWatcherKeepsDownMarkersInStepOnInotify(t *testing.T) {
	keepsDownMarkersInStep(t, time.Hour)
}
