package front

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/health"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/reconcile"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
)

// User is the unprivileged account the gateways run as.
const User = "hermes"

// HistoryFile is where the supervision watcher (main-hermes) records state
// changes, one line each, prefixed by the slot name.
const HistoryFile = "/run/hermes/history.log"

// New returns the front wired to the real system.
func New() *Front {
	m := s6.New(s6.DefaultScanDir)
	f := &Front{
		Getenv:  os.Getenv,
		Environ: os.Environ(),
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		UnderS6: s6.UnderPID1("/proc", s6.DefaultScanDir),
		S6:      m,
		Exec:    syscall.Exec,
		Run:     run,
		UID:     -1,
		GID:     -1,
		Block:   block,
		History: history,
		Chdir:   os.Chdir,
		CMD:     func() []string { return reconcile.FindCMD("/proc") },
	}
	f.Health = f.health
	f.GatewayLock = func(name string) error { return f.gatewayLock(name, time.Sleep) }
	f.Admin = slotadmin.Remote{Stdout: os.Stdout, Stderr: os.Stderr}
	f.Euid = os.Geteuid()
	if a, err := account.Lookup(User); err == nil && os.Geteuid() == 0 {
		m.Group = a.GID
		// Files written for the hermes user belong to it, even when an
		// operator runs `docker exec` as root.
		f.UID, f.GID = a.UID, a.GID
		f.BecomeHermes = a.Become
	}
	if ownsScanDir(m.ScanDir) {
		f.Admin = slotadmin.Local{S6: m, Home: f.home()}
	}
	return f
}

// ownsScanDir: root, or the user the whole container runs as (--user, when
// s6-overlay's preinit gave it /run): it registers slots itself.
func ownsScanDir(dir string) bool {
	if os.Geteuid() == 0 {
		return true
	}
	st, err := os.Stat(dir)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid()
}

// run runs the agent to completion; as root it runs as the hermes user so
// that what it creates in the volume belongs to hermes.
func run(path string, argv, env []string) (int, error) {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if os.Geteuid() == 0 {
		if a, err := account.Lookup(User); err == nil {
			groups := make([]uint32, len(a.Groups))
			for i, g := range a.Groups {
				groups[i] = uint32(g)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: groups}}
		}
	}
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

func block() int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return int((<-ch).(syscall.Signal))
}

func history(slot string, n int) []string {
	fh, err := os.Open(HistoryFile)
	if err != nil {
		return nil
	}
	defer fh.Close()
	var lines []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " "+slot+" ") {
			lines = append(lines, sc.Text())
			if len(lines) > n {
				lines = lines[1:]
			}
		}
	}
	return lines
}

func (f *Front) health(name string) error {
	return Probe(f.home(), name, f.Getenv, 3*time.Second)
}

// Probe asks a profile's gateway whether it serves: /health/detailed on its
// API port (as the agent resolves it, agentcfg.Port) answers with the pid in
// its pid file. It is the readiness check of the gateway slots and the
// image's HEALTHCHECK.
func Probe(home, name string, getenv func(string) string, timeout time.Duration) error {
	dir := profile.Dir(home, name)
	port, err := agentcfg.Port(dir, getenv)
	if err != nil {
		return err
	}
	pid, err := agentcfg.GatewayPid(dir)
	if err != nil {
		if other := heldElsewhere(home, name); other != nil {
			return other
		}
		return fmt.Errorf("no gateway pid yet: %v", err)
	}
	if err := health.Serving(port, pid, timeout); err != nil {
		if other := heldElsewhere(home, name); other != nil {
			return other
		}
		return err
	}
	// A shared network (--network host) could answer for another
	// container's gateway of this profile: not ours.
	return heldElsewhere(home, name)
}
