// Package watch is the container's supervision watcher, the main-hermes
// service: it follows every slot in the scan directory and writes one line
// per state change (started, exited with a code or signal, restarted, given
// up after exit 78, stopped) to docker logs and to a history file that
// `hermes gateway status` shows.
package watch

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// HistoryMax is the size at which the history file is rotated.
const HistoryMax = 64 << 10

// Watcher follows the slots of one scan directory.
type Watcher struct {
	S6       *s6.Manager
	Out      io.Writer // docker logs
	History  string    // history file, "" for none
	Interval time.Duration
	Now      func() time.Time
	// Markers keeps each slot's down marker in step with whether s6 wants it
	// up (root's job: `hermes gateway start` as hermes only writes the
	// control fifo), so that a supervisor restarted after a crash of its own
	// does what the slot was last asked to do.
	Markers bool
	// Idle, when not zero, makes Run sleep until a slot changes (inotify),
	// with a scan every Idle all the same; zero scans every Interval.
	Idle time.Duration

	seen   map[string]slotState
	listed []string          // the slots of the last scan
	raw    map[string][]byte // each slot's supervise/status as last queried
}

type slotState struct {
	st       s6.Status
	restarts int
}

// Run watches until stop is closed.
func (w *Watcher) Run(stop <-chan struct{}) {
	if w.Idle > 0 {
		if n, err := newNotifier(w.S6.ScanDir); err == nil {
			defer n.close()
			w.runNotified(stop, n)
			return
		}
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		w.Scan()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// Scan looks at every slot once and reports what changed since the last scan.
// Only slots whose supervise/status file changed are queried with s6-svstat:
// s6-supervise replaces that file atomically on every change, so comparing
// its bytes is exact and costs no process (a container booting fifty
// gateways would otherwise spawn an s6-svstat per slot per scan).
func (w *Watcher) Scan() {
	if w.seen == nil {
		w.seen = map[string]slotState{}
		w.raw = map[string][]byte{}
	}
	refs, err := w.S6.Slots()
	if err != nil {
		return
	}
	slots := make([]string, len(refs))
	for i, r := range refs {
		slots[i] = r.Name
	}
	sort.Strings(slots)
	w.listed = slots
	present := map[string]bool{}
	for _, slot := range slots {
		present[slot] = true
		raw, err := os.ReadFile(filepath.Join(w.S6.Dir(slot), "supervise", "status"))
		if err != nil {
			continue
		}
		if prev, ok := w.raw[slot]; ok && bytes.Equal(prev, raw) {
			continue
		}
		st, err := w.S6.Status(slot)
		if err != nil {
			continue
		}
		w.raw[slot] = raw
		prev, known := w.seen[slot]
		if !st.Up && st.WantUp && (!known || !prev.st.WantUp) {
			// Asked to start, not spawned yet: report the start once it is
			// up, as a start and not as a restart after a crash.
			continue
		}
		if w.Markers && (!known || prev.st.WantUp != st.WantUp) {
			if err := w.S6.SetNormallyUp(slot, st.WantUp); err != nil {
				w.emit(fmt.Sprintf("%s: down marker: %v", slot, err))
			}
		}
		cur := slotState{st: st, restarts: prev.restarts}
		if known && prev.st.Up && st.Up && prev.st.Pid != st.Pid {
			// Died and came back between two scans: s6 keeps how.
			if d, ok, err := w.S6.LastDeath(slot); err == nil && ok {
				st.ExitCode, st.Signal = d.ExitCode, d.Signal
			}
		}
		for _, line := range Describe(slot, prev.st, st, known, &cur.restarts) {
			w.emit(line)
		}
		w.seen[slot] = cur
	}
	for slot := range w.seen {
		if !present[slot] {
			w.emit(slot + " removed")
			delete(w.seen, slot)
			delete(w.raw, slot)
		}
	}
}

// Describe turns a state change into log lines. restarts counts restarts.
func Describe(slot string, prev, cur s6.Status, known bool, restarts *int) []string {
	var lines []string
	switch {
	case !known && cur.Up:
		lines = append(lines, fmt.Sprintf("%s started (pid %d)", slot, cur.Pid))
	case gaveUp(prev, cur, known):
		// Started and exited 78 between two scans (or before the first):
		// say both.
		lines = append(lines, slot+" "+exitText(cur),
			fmt.Sprintf("%s gave up after exit %d (fatal configuration): not restarting", slot, render.ExitConfig))
	case !known:
	case prev.Up && cur.Up && prev.Pid != cur.Pid:
		// Died and came back between two scans (how, when known, is in
		// cur's exit code or signal).
		*restarts++
		lines = append(lines, fmt.Sprintf("%s %s; restarted (pid %d, restart #%d)", slot, exitText(cur), cur.Pid, *restarts))
	case prev.Up && !cur.Up:
		lines = append(lines, slot+" "+exitText(cur))
		switch {
		case cur.ExitCode == render.ExitConfig && !cur.WantUp:
			lines = append(lines, fmt.Sprintf("%s gave up after exit %d (fatal configuration): not restarting", slot, render.ExitConfig))
		case !cur.WantUp:
			lines = append(lines, slot+" stopped")
		}
	case !prev.Up && cur.Up:
		if prev.WantUp {
			*restarts++
			lines = append(lines, fmt.Sprintf("%s restarted (pid %d, restart #%d)", slot, cur.Pid, *restarts))
		} else {
			lines = append(lines, fmt.Sprintf("%s started (pid %d)", slot, cur.Pid))
		}
	}
	return lines
}

// gaveUp: the slot is down after exit 78 and s6 no longer wants it up, and
// that is news: not the same death seen at the last scan (a status re-read
// with nothing new keeps its up/down time running: it does not go back).
// The start that led to it may never have been seen: a gateway that exits
// 78 at once is up for milliseconds.
func gaveUp(prev, cur s6.Status, known bool) bool {
	if cur.Up || cur.WantUp || cur.ExitCode != render.ExitConfig {
		return false
	}
	sameDeath := known && !prev.Up && !prev.WantUp && prev.ExitCode == render.ExitConfig && cur.Seconds >= prev.Seconds
	return !sameDeath && !(known && prev.Up)
}

func exitText(st s6.Status) string {
	switch {
	case st.Signal != "":
		return "exited by signal " + st.Signal
	case st.ExitCode >= 0:
		return fmt.Sprintf("exited with code %d", st.ExitCode)
	}
	return "exited"
}

func (w *Watcher) emit(line string) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	stamped := now().UTC().Format(time.RFC3339) + " " + line
	fmt.Fprintln(w.Out, "hermes-watch: "+line)
	if w.History == "" {
		return
	}
	if st, err := os.Stat(w.History); err == nil && st.Size() >= HistoryMax {
		os.Rename(w.History, w.History+".1")
	}
	if fh, err := os.OpenFile(w.History, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(fh, stamped)
		fh.Close()
	}
}
