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

// HistoryFile is where the supervision watcher (main-hermes) records state
// changes, one line each, prefixed by the slot name.
const HistoryFile = "/run/hermes/history.log"

// New returns the front wired to the real system.
func New() *Front {
	m := s6.New(s6.DefaultScanDir)
	h := &Host{Getenv: os.Getenv}
	f := &Front{
		Getenv:  os.Getenv,
		Environ: os.Environ(),
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		UnderS6: s6.UnderPID1("/proc", s6.DefaultScanDir),
		S6:      m,
		Sys:     h,
		Admin:   slotadmin.Remote{Stdout: os.Stdout, Stderr: os.Stderr},
		UID:     -1,
		GID:     -1,
		Euid:    os.Geteuid(),
	}
	if a, err := account.Lookup(account.Hermes); err == nil && f.Euid == 0 {
		h.Hermes = &a
		m.Group = a.GID
		// Files written for the hermes user belong to it, even when an
		// operator runs `docker exec` as root.
		f.UID, f.GID = a.UID, a.GID
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

// Host is the real System.
type Host struct {
	Getenv func(string) string
	// Hermes is the account root drops to (nil: not root, or no hermes).
	Hermes *account.Account
}

// Exec is execve(2).
func (*Host) Exec(path string, argv, env []string) error { return syscall.Exec(path, argv, env) }

// Run runs the agent to completion; as root it runs as the hermes user so
// that what it creates in the volume belongs to hermes. Death by a signal
// is 128+signal, as a shell reports it.
func (h *Host) Run(path string, argv, env []string) (int, error) {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if h.Hermes != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.Hermes.Credential()}
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

// WaitSignal blocks until SIGTERM or SIGINT.
func (*Host) WaitSignal() int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return int((<-ch).(syscall.Signal))
}

// Chdir is chdir(2).
func (*Host) Chdir(dir string) error { return os.Chdir(dir) }

// BecomeHermes drops the whole process to hermes, when root.
func (h *Host) BecomeHermes() (bool, error) {
	if h.Hermes == nil {
		return false, nil
	}
	return true, h.Hermes.Become()
}

// History reads the watcher's history file.
func (*Host) History(slot string, n int) []string { return history(HistoryFile, slot, n) }

// Health is Probe with the healthcheck's timeout.
func (h *Host) Health(home, name string) error { return Probe(home, name, h.Getenv, 3*time.Second) }

// CMD is the container's command line, from /proc.
func (*Host) CMD() []string { return reconcile.FindCMD("/proc") }

func history(file, slot string, n int) []string {
	fh, err := os.Open(file)
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
		return fmt.Errorf("no gateway pid yet: %v", err)
	}
	return health.Serving(port, pid, timeout)
}

// WaitServing is the readiness check of a gateway slot, run once per start
// by s6-notifyoncheck: it polls the profile's gateway itself (Probe), cheaply
// and in one process (a probe process per poll would swamp a container
// starting many gateways), and returns nil once it answers, or Probe's last
// error after window, so s6-notifyoncheck can try again. It polls every 10
// ms at first (an agent that starts quickly is seen at once), then backs off
// to every 250 ms: each poll costs about a millisecond of CPU here, and fifty
// agents starting together compete for that CPU for seconds.
func WaitServing(home, name string, getenv func(string) string, window time.Duration) error {
	deadline := time.Now().Add(window)
	for wait := 10 * time.Millisecond; ; wait = min(wait*3/2, 250*time.Millisecond) {
		err := Probe(home, name, getenv, 500*time.Millisecond)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait) // polling interval
	}
}
