package slotexec

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A logger's s6-supervise killed with SIGKILL leaves its s6-log running,
// reparented to PID 1 and still holding the lock of the log directory:
// s6-svscan starts a new s6-supervise, whose s6-log dies on that lock
// ("unable to lock …/lock: Device or resource busy") once a second, for as
// long as the orphan lives. The orphan still reads the slot's pipe, so it
// is safe to end: what it has not read stays in the pipe for the new one.

// FreeLogDir ends the s6-log holding dir's lock when orphan says it may
// (an s6-log whose parent is PID 1), and waits up to wait for the lock to be
// free. It returns the pid it ended, 0 when the lock was free or its holder
// is left alone.
func FreeLogDir(dir string, orphan func(pid int) bool, wait time.Duration) (int, error) {
	lock := filepath.Join(dir, "lock")
	pid, err := lockHolder(lock)
	if err != nil || pid <= 0 || !orphan(pid) {
		return 0, err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return 0, err
	}
	deadline := time.Now().Add(wait)
	for {
		holder, err := lockHolder(lock)
		if err != nil || holder != pid {
			return pid, err
		}
		if time.Now().After(deadline) {
			// It did not finish its line in time: the new logger needs the
			// directory more than the orphan needs its last bytes.
			syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockHolder is the pid holding a write-conflicting lock on path (fcntl
// F_GETLK: what s6-log's lock is), 0 when none or no such file, -1 for an
// open file description lock (no pid).
func lockHolder(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, err
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}

// OrphanedLogger reports whether pid is an s6-log whose parent is PID 1: its
// supervisor is gone (PID 1, s6-svscan, reaps orphans in the container).
func OrphanedLogger(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || s[open+1:close] != "s6-log" {
		return false
	}
	f := strings.Fields(s[close+1:])
	return len(f) >= 2 && f[1] == "1"
}
