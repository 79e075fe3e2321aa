package slotadmin

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hermes-agent/hermes-s6/tools/slotexec"
	"golang.org/x/sys/unix"
)

// Server is how the hermes-admin service runs (a run program, as root).
type Server struct {
	Dir    string // the socket directory (Dir)
	Tool   string // the multi-call binary s6-sudod runs for each request
	GID    int    // the hermes group, allowed to connect
	Euid   int
	Path   string // $PATH, to find s6-ipcserver
	Stderr io.Writer
	// NotifyFD is s6's readiness notification fd (3, notification-fd).
	NotifyFD int
}

// Run prepares the socket directory and its access rules for the hermes
// group, then becomes s6's super-server (ServerArgv), which runs
// `slot-admin` for each request. Not root (a --user container): the scan
// directory is this user's and the front registers slots itself, so the
// service only says so, reports ready and idles until stopped. It returns
// only on failure, with the exit code.
func (s Server) Run() int {
	if s.Euid != 0 {
		fmt.Fprintf(s.Stderr, "hermes-admin: not root (uid %d): every process runs as this user, nothing to serve\n", s.Euid)
		unix.Write(s.NotifyFD, []byte("\n"))
		unix.Close(s.NotifyFD)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return 0
	}
	if err := Prepare(s.Dir, s.GID); err != nil {
		fmt.Fprintln(s.Stderr, "hermes-admin:", err)
		return 111
	}
	// s6-ipcserver -1 announces readiness on its stdout: make that the
	// service's notification fd (3) when s6 gave one.
	if _, err := unix.FcntlInt(uintptr(s.NotifyFD), unix.F_GETFD, 0); err == nil {
		if err := unix.Dup3(s.NotifyFD, 1, 0); err != nil {
			fmt.Fprintln(s.Stderr, "hermes-admin: notification fd:", err)
			return 111
		}
		unix.Close(s.NotifyFD)
	}
	argv := ServerArgv(s.Tool, s.Dir)
	path, err := slotexec.LookPath(argv[0], s.Path)
	if err == nil {
		err = syscall.Exec(path, argv, os.Environ())
	}
	fmt.Fprintf(s.Stderr, "hermes-admin: cannot run %s: %v\n", argv[0], err)
	return 111
}
