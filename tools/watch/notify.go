package watch

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Scanning every slot's status ten times a second costs the container CPU
// for as long as it runs, nothing changing or not: 18 ms a second with fifty
// profiles, all of it the watcher's. With inotify the watcher sleeps until
// s6-supervise rewrites a status file (it renames a new one into
// supervise/) or a slot comes or goes in the scan directory, then scans as
// before, at most once per Interval; a scan every Idle catches anything a
// watch missed.

// notifier wakes the watcher on changes under the scan directory.
type notifier struct {
	f       *os.File
	events  chan struct{}
	watched map[string]bool // supervise directories with a watch
}

const (
	scanDirEvents   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_ONLYDIR
	superviseEvents = unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_ONLYDIR
)

func newNotifier(scanDir string) (*notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, scanDir, scanDirEvents); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Non-blocking: the runtime's poller reads it, and Close ends the read.
	n := &notifier{f: os.NewFile(uintptr(fd), "inotify"), events: make(chan struct{}, 1), watched: map[string]bool{}}
	go n.read()
	return n, nil
}

func (n *notifier) read() {
	buf := make([]byte, 64<<10)
	for {
		if _, err := n.f.Read(buf); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				return
			}
			continue
		}
		select {
		case n.events <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// follow watches the supervise directory of every slot in dirs, and forgets
// the ones that are gone (a slot made again is a new directory).
func (n *notifier) follow(dirs []string) {
	present := map[string]bool{}
	for _, d := range dirs {
		sup := filepath.Join(d, "supervise")
		present[sup] = true
		if n.watched[sup] {
			continue
		}
		// No supervise directory yet: the scan directory's events bring the
		// watcher back, and it tries again.
		if _, err := unix.InotifyAddWatch(int(n.f.Fd()), sup, superviseEvents); err == nil {
			n.watched[sup] = true
		}
	}
	for sup := range n.watched {
		if !present[sup] {
			delete(n.watched, sup)
		}
	}
}

func (n *notifier) close() { n.f.Close() }

// runNotified is Run driven by inotify: a scan after each burst of
// changes (no sooner than Interval after the change that woke it, so a
// booting container's many changes make one scan), and one every Idle.
func (w *Watcher) runNotified(stop <-chan struct{}, n *notifier) {
	for {
		select {
		case <-n.events: // what woke it, or came since: this scan sees it
		default:
		}
		w.Scan()
		dirs := make([]string, len(w.listed))
		for i, slot := range w.listed {
			dirs[i] = w.S6.Dir(slot)
		}
		n.follow(dirs)
		idle := time.NewTimer(w.Idle)
		select {
		case <-stop:
			idle.Stop()
			return
		case <-n.events:
		case <-idle.C:
		}
		idle.Stop()
		settle := time.NewTimer(w.Interval)
		select {
		case <-stop:
			settle.Stop()
			return
		case <-settle.C:
		}
	}
}
