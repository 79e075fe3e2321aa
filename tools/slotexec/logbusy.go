package slotexec

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// logDirBusy reports whether another s6-log holds the log directory dir:
// its lock file is write-locked (s6-log takes an open-file-description lock
// on DIR/lock and dies when it cannot, so a second container on the same
// volume would restart its logger every second). Only tested, never taken.
func logDirBusy(dir string) bool {
	fd, err := unix.Open(filepath.Join(dir, "lock"), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}
