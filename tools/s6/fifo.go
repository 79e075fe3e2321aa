package s6

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

func mkfifo(path string, mode uint32) error { return syscall.Mkfifo(path, mode) }

func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if err == unix.EEXIST {
		return os.ErrExist
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// control sends commands to a slot's s6-supervise through its control fifo,
// as s6-svc does, without spawning a process.
func control(dir, cmds string) error {
	p := filepath.Join(dir, "supervise", "control")
	// Failures are reported as s6-svc reports them, with its exit codes.
	cmd := "s6-svc -" + cmds + " " + dir
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return &Error{Cmd: cmd, Code: 100, Output: "supervisor not listening"}
		}
		return &Error{Cmd: cmd, Code: 111, Output: err.Error()}
	}
	defer f.Close()
	if _, err := f.Write([]byte(cmds)); err != nil {
		return &Error{Cmd: cmd, Code: 111, Output: err.Error()}
	}
	return nil
}

// supervised reports whether s6-supervise listens on dir's control fifo.
// s6-supervise opens the fifo before it writes its first status file: until
// that file exists, s6-svstat fails, so it is waited for too.
func supervised(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, "supervise", "control"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	f.Close()
	_, err = os.Stat(filepath.Join(dir, "supervise", "status"))
	return err == nil
}
