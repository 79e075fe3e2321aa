package entrypoint

import (
	"fmt"
	"os"
	"strings"
)

// InitPath is s6-overlay's stage 1 (the stage layer's with S6_SOURCE=debian).
const InitPath = "/init"

// Boot is the image's ENTRYPOINT (hermes-init). As PID 1 it becomes
// s6-overlay's /init (or the debian stage layer's). Anywhere else (`docker
// run --init`, Fly Machines, some Kubernetes setups) s6 cannot be PID 1 and
// s6-overlay refuses to start: then it says so in one line, runs the setup
// step (as root) and runs the CMD in the foreground, without supervision, as
// the CMD wrapper would (`gateway run` is the gateway itself; its exit code is
// the container's). The container environment is this process's: nothing
// was dumped. It returns only on error, with the exit code.
func (w Wrapper) Boot(args []string, pid int, pid1Comm string, setup func() int) int {
	if pid == 1 {
		err := w.Proc.Exec(InitPath, append([]string{InitPath}, args...), os.Environ())
		fmt.Fprintf(w.Stderr, "hermes-init: cannot run %s: %v\n", InitPath, err)
		return 111
	}
	fmt.Fprintf(w.Stderr, "hermes-init: warning: not PID 1 (PID 1 is %s, e.g. docker run --init): s6 supervision is off; running the command in the foreground, no restart on crash\n", pid1Comm)
	if w.Proc.Getuid() == 0 {
		if code := setup(); code != 0 {
			return code
		}
	}
	return w.Run(args, os.Environ())
}

// BootMain is Boot on this process.
func BootMain(args []string, setup func() int) int {
	pid1 := "unknown"
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		pid1 = strings.TrimSpace(string(b))
	}
	return Wrapper{Host{}, os.Stderr}.Boot(args, os.Getpid(), pid1, setup)
}
