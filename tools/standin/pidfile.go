package standin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const pidFileName = "gateway.pid"

// How long --replace waits for the previous gateway after SIGTERM, and then
// after SIGKILL.
const (
	replaceTermTimeout = 10 * time.Second
	replaceKillTimeout = 5 * time.Second
	replacePollEvery   = 50 * time.Millisecond
)

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writePidFile(path string, pid int) error {
	return writeFileAtomic(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s does not hold a pid: %q", path, bytes.TrimSpace(data))
	}
	return pid, nil
}

// removeOwnPidFile removes path only if it still names pid, so that a
// gateway never deletes the pid file of the instance that replaced it.
func removeOwnPidFile(path string, pid int) error {
	if owner, err := readPidFile(path); err != nil || owner != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// processAlive reports whether pid names a running process. Zombies count
// as dead: they have exited and only wait to be reaped.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return !isZombie(pid)
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: "PID (COMM) STATE ..."; COMM may itself contain ") ".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitExit polls until pid is gone or timeout passes.
func waitExit(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(replacePollEvery)
	}
	return true
}

// replacePrevious stops the live gateway named in pidPath, if any: SIGTERM,
// then SIGKILL after replaceTermTimeout. It returns once that process is
// gone.
func replacePrevious(pidPath string, log lineLogger) error {
	pid, err := readPidFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		log.printf("--replace: ignoring unreadable pid file: %v", err)
		return nil
	}
	if pid == os.Getpid() || !processAlive(pid) {
		return nil
	}
	log.printf("--replace: stopping previous gateway pid=%d with SIGTERM", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("--replace: cannot signal previous gateway pid=%d: %w", pid, err)
	}
	if waitExit(pid, replaceTermTimeout) {
		log.printf("--replace: previous gateway pid=%d exited", pid)
		return nil
	}
	log.printf("--replace: previous gateway pid=%d still running after %s, sending SIGKILL", pid, replaceTermTimeout)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("--replace: cannot kill previous gateway pid=%d: %w", pid, err)
	}
	if !waitExit(pid, replaceKillTimeout) {
		return fmt.Errorf("--replace: previous gateway pid=%d survived SIGKILL", pid)
	}
	log.printf("--replace: previous gateway pid=%d killed", pid)
	return nil
}
