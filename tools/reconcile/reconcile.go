// Package reconcile is the boot reconciler: run from cont-init.d on every
// boot, it re-renders every slot, removes stale pid files and restores the
// desired state of every profile's gateway. One bad profile never stops the
// others or the boot.
package reconcile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/cmdline"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// BootLog is the per-boot log under $HERMES_HOME, rotated at BootLogMax.
const (
	BootLog    = "logs/container-boot.log"
	BootLogMax = 256 << 10
)

// Reconciler restores slots from desired state.
type Reconciler struct {
	Home   string
	S6     *s6.Manager
	Getenv func(string) string
	// CMD is the container's command line (see FindCMD), nil if none.
	CMD []string
	// UID/GID own what the reconciler creates (-1: unchanged).
	UID, GID int
	Log      io.Writer
	// Alive reports whether pid is a live gateway process.
	Alive func(pid int) bool
	Now   func() time.Time
	// Slot describes a profile's gateway slot (nil: render.GatewaySlot).
	Slot func(profile string) render.Slot
}

func (r *Reconciler) gatewaySlot(name string) render.Slot {
	if r.Slot != nil {
		return r.Slot(name)
	}
	return render.GatewaySlot(name)
}

// Outcome is what happened to one profile.
type Outcome struct {
	Profile string
	Slot    string
	Action  string // "started", "down", "skipped", "error"
	Reason  string
}

func (o Outcome) String() string {
	return fmt.Sprintf("%s %s: %s (%s)", o.Profile, o.Slot, o.Action, o.Reason)
}

// Run reconciles every profile and the dashboard, and returns the outcomes.
func (r *Reconciler) Run() []Outcome {
	if err := profile.CheckHome(r.Home); err != nil {
		r.logf("%v; no slot is set up", err)
		return nil
	}
	names, invalid, err := profile.List(r.Home)
	if err != nil {
		r.logf("cannot list profiles under %s: %v", r.Home, err)
	}
	for _, bad := range invalid {
		r.logf("ignoring profiles/%s: not a valid profile name", bad)
	}
	owner, noGateways := r.cmdOwnership()

	// Decide, then render every slot with its down marker mirroring the
	// decision: a fresh slot that should run has none, so s6-supervise starts
	// it by itself after the one rescan; existing slots get a control command.
	var outcomes []Outcome
	existing := map[string]bool{}
	for _, name := range names {
		slot := profile.Slot(name)
		r.removeStalePid(name)
		o := Outcome{Profile: name, Slot: slot}
		o.Action, o.Reason = r.decide(name, owner, noGateways)
		desc := r.gatewaySlot(name)
		desc.Down = o.Action != "started"
		isNew, err := r.render(desc)
		if err != nil {
			o.Action, o.Reason = "error", err.Error()
		}
		existing[slot] = err == nil && !isNew
		outcomes = append(outcomes, o)
	}
	dash := render.DashboardSlot()
	dash.Down = !profile.Truthy(r.Getenv("HERMES_DASHBOARD"))
	dashNew, dashErr := r.render(dash)
	if dashErr != nil {
		r.logf("dashboard: %v", dashErr)
	}
	if err := r.S6.Rescan(); err != nil {
		r.logf("rescan: %v", err)
	}
	for i := range outcomes {
		o := &outcomes[i]
		switch {
		case o.Action == "error":
		case existing[o.Slot]:
			if err := r.apply(o.Slot, o.Action == "started"); err != nil {
				o.Action, o.Reason = "error", err.Error()
			}
		default:
			// Fresh: supervised before the CMD may drive it.
			if err := r.S6.WaitSupervised(o.Slot); err != nil {
				o.Action, o.Reason = "error", err.Error()
			}
		}
		r.logf("%s", o)
	}
	if dashErr == nil {
		if dashNew {
			if err := r.S6.WaitSupervised(dash.Name); err != nil {
				r.logf("dashboard: %v", err)
			}
		}
		r.dashboard(!dashNew, !dash.Down)
	}
	r.bootLog(outcomes)
	return outcomes
}

// apply brings an already supervised slot up or down.
func (r *Reconciler) apply(slot string, up bool) error {
	if up {
		if err := r.S6.MarkUp(slot); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		if err := r.S6.Start(slot); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		return nil
	}
	if err := r.S6.MarkDown(slot); err != nil {
		return fmt.Errorf("marking down: %w", err)
	}
	return nil
}

// render writes a slot's directory: registered fresh if missing (without
// a rescan), re-rendered in place if it is a Hermes slot already (a /run
// kept across a restart). Anything else of that name in the scan directory
// (an s6-rc service, say) is left alone and reported.
func (r *Reconciler) render(slot render.Slot) (isNew bool, err error) {
	if r.S6.Exists(slot.Name) {
		if !r.S6.IsSlot(slot.Name) {
			return false, fmt.Errorf("%s in %s is not a Hermes slot (no %s): left alone", slot.Name, r.S6.ScanDir, render.IdentityFile)
		}
		dir := r.S6.Dir(slot.Name)
		if err := render.Write(dir, slot); err != nil {
			return false, err
		}
		return false, s6.PrepareControl(dir, r.S6.Group)
	}
	if err := r.S6.Install(slot); err != nil {
		return false, err
	}
	return true, nil
}

// cmdOwnership says which profile a foreground CMD gateway owns ("" none),
// and whether the CMD is the dashboard alone (no gateway at all).
func (r *Reconciler) cmdOwnership() (owner string, noGateways bool) {
	return cmdline.Ownership(r.CMD, r.Getenv)
}

// plainGatewayRun reports whether the CMD is a `gateway run` of profile name
// that the redirect will supervise (the legacy container case).
func (r *Reconciler) plainGatewayRun(name string) bool {
	l, err := cmdline.ParseCMD(r.CMD)
	if err != nil {
		return false
	}
	_, run := l.GatewayRun()
	return run && l.Profile == name && name == profile.Default
}

func (r *Reconciler) decide(name, owner string, noGateways bool) (action, reason string) {
	if noGateways {
		return "skipped", "the CMD is the dashboard: no gateway is started in this container"
	}
	if name == owner {
		return "skipped", "the CMD runs this gateway in the foreground (--no-supervise)"
	}
	desired, err := profile.ReadState(r.Home, name)
	switch {
	case errors.Is(err, profile.ErrNoState) && r.plainGatewayRun(name):
		if werr := profile.WriteState(r.Home, name, profile.Running, r.UID, r.GID); werr != nil {
			return "started", "legacy `gateway run` container without state; could not record it: " + werr.Error()
		}
		return "started", "legacy `gateway run` container without state: migrated to running"
	case errors.Is(err, profile.ErrNoState):
		return "down", "no desired state recorded"
	case err != nil:
		return "down", err.Error()
	case desired == profile.Running:
		return "started", "desired state running"
	default:
		return "down", "desired state stopped"
	}
}

func (r *Reconciler) dashboard(existing, up bool) {
	if existing {
		if err := r.apply("dashboard", up); err != nil {
			r.logf("dashboard: %v", err)
			return
		}
	}
	if up {
		r.logf("dashboard: started (HERMES_DASHBOARD=%s)", r.Getenv("HERMES_DASHBOARD"))
	}
}

// removeStalePid removes a pid file whose process is not a live gateway.
// Root does it, inside $HERMES_HOME only (profile.OpenDir).
func (r *Reconciler) removeStalePid(name string) {
	dir, err := profile.OpenDir(r.Home, name)
	if err != nil {
		return
	}
	defer dir.Close()
	b, err := dir.ReadFile(profile.PidFile)
	if err != nil {
		return
	}
	pid, ok := agentcfg.ParsePid(b)
	if ok && r.Alive != nil && r.Alive(pid) {
		return
	}
	if err := dir.Remove(profile.PidFile); err == nil {
		r.logf("%s: removed stale pid file %s", name, filepath.Join(profile.Dir(r.Home, name), profile.PidFile))
	}
}

// GatewayAlive reports whether pid is a running gateway process (not a
// zombie) in this pid namespace.
func GatewayAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "gateway")
}

func (r *Reconciler) logf(format string, a ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "hermes-reconcile: "+format+"\n", a...)
	}
}

func (r *Reconciler) bootLog(outcomes []Outcome) {
	// Root writes here, in what hermes owns: inside $HERMES_HOME only, so a
	// symlink planted as the log cannot make root write (or chown) a file
	// elsewhere (profile.OpenDir).
	home, err := profile.OpenDir(r.Home, profile.Default)
	if err != nil {
		r.logf("boot log: %v", err)
		return
	}
	defer home.Close()
	if err := home.MkdirAll(filepath.Dir(BootLog), 0o755); err != nil {
		r.logf("boot log: %v", err)
		return
	}
	if st, err := home.Lstat(BootLog); err == nil && st.Size() >= BootLogMax {
		home.Rename(BootLog, BootLog+".1")
	}
	fh, err := home.OpenFile(BootLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.logf("boot log: %v", err)
		return
	}
	defer fh.Close()
	if r.UID >= 0 {
		fh.Chown(r.UID, r.GID)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	stamp := now().UTC().Format(time.RFC3339)
	for _, o := range outcomes {
		fmt.Fprintf(fh, "%s %s\n", stamp, o)
	}
}

// FindCMD returns the container's CMD: the arguments after `top` of the
// stage-2 process (`rc.init top CMD...`, in s6-overlay and in the debian
// stage layer alike), found by scanning procRoot.
func FindCMD(procRoot string) []string {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		for i := 0; i+1 < len(argv); i++ {
			if strings.HasSuffix(argv[i], "/rc.init") && argv[i+1] == "top" {
				return argv[i+2:]
			}
		}
	}
	return nil
}
