package s6

import (
	"os"
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
