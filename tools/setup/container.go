package setup

import (
	"fmt"
	"io"
	"os"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/profile"
)

// Paths are the files and directories the setup step works on.
type Paths struct {
	Passwd, Group string
	Run           string // /run: root's alone
	ScanDir       string // the s6 scan directory: root's alone
	RunHermes     string // /run/hermes: the watcher's history
	Home          string // $HERMES_HOME
}

// Container is the cont-init setup step, run once per boot (and by
// hermes-init when s6 cannot be PID 1): the uid/gid remap, /run made root's,
// and the $HERMES_HOME tree given to hermes. euid is the process's effective
// uid; it returns the exit code, saying on log what it did or why not.
func Container(p Paths, euid, egid int, getenv func(string) string, log io.Writer) int {
	wantUID, wantGID := WantedIDs(getenv, log)
	if euid != 0 && (wantUID >= 0 || wantGID >= 0) {
		// Run as --user (Kubernetes runAsUser): no root to rewrite
		// /etc/passwd with, and the processes already have their ids.
		fmt.Fprintf(log, "hermes-setup: HERMES_UID/PUID and HERMES_GID/PGID need root to remap the hermes user; the container runs as uid %d, gid %d: carrying on as that (set the ids with --user or runAsUser/runAsGroup instead)\n", euid, egid)
		wantUID, wantGID = -1, -1
	}
	acc, err := Remap(p.Passwd, p.Group, account.Hermes, wantUID, wantGID)
	if err != nil {
		fmt.Fprintln(log, "hermes-setup: uid/gid remap:", err)
		if acc, err = account.Lookup(account.Hermes); err != nil {
			fmt.Fprintln(log, "hermes-setup: the hermes account:", err)
			return 1
		}
	} else if wantUID >= 0 || wantGID >= 0 {
		fmt.Fprintf(log, "hermes-setup: hermes is uid %d, gid %d\n", acc.UID, acc.GID)
	}
	// /run and the scan directory are root's alone (s6 executes what is
	// there as root): never writable by hermes, whatever /run was mounted as.
	if err := RootOnly(euid, p.Run, p.ScanDir); err != nil {
		fmt.Fprintln(log, "hermes-setup: /run:", err)
	}
	if err := os.MkdirAll(p.RunHermes, 0o755); err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
	}
	if euid != 0 {
		if err := MakeTree(p.Home); err != nil {
			fmt.Fprintln(log, "hermes-setup:", err)
			return 1
		}
		return 0
	}
	changed, err := PrepareHome(p.Home, acc)
	if err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
		return 1
	}
	if len(changed) > 0 {
		fmt.Fprintf(log, "hermes-setup: gave %d path(s) under %s to hermes\n", len(changed), p.Home)
	}
	return 0
}

// DefaultPaths are the image's, with $HERMES_HOME from getenv.
func DefaultPaths(getenv func(string) string, scanDir string) Paths {
	return Paths{
		Passwd: "/etc/passwd", Group: "/etc/group",
		Run: "/run", ScanDir: scanDir, RunHermes: "/run/hermes",
		Home: profile.Home(getenv),
	}
}
