package front

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/hermes-agent/hermes-s6/tools/cmdline"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
)

// NoSuperviseEnv opts `gateway run` out of the redirect when truthy.
const NoSuperviseEnv = cmdline.NoSuperviseEnv

// Mode is what `gateway run` does.
type Mode int

const (
	// Foreground runs the gateway as this process (the pre-s6 behaviour).
	Foreground Mode = iota
	// Redirect starts the supervised slot and becomes `sleep infinity`.
	Redirect
)

// Decide applies the three gates of the redirect, in order, and says why.
func Decide(underS6 bool, getenv func(string) string, args []string) (Mode, string) {
	switch {
	case !underS6:
		return Foreground, "not under s6 as PID 1"
	case getenv(render.SupervisedChildEnv) == "1":
		return Foreground, render.SupervisedChildEnv + "=1 (already supervised)"
	}
	if out, why := cmdline.OptOut(args, getenv); out {
		return Foreground, why
	}
	return Redirect, "under s6 supervision"
}

// Breadcrumb is printed on stderr when `gateway run` is redirected.
func Breadcrumb(slot string, desired profile.Desired) string {
	lines := []string{
		"================================================================",
		"hermes: `gateway run` now runs the gateway under s6 supervision",
		"hermes:   slot " + slot + ": restarted automatically if it crashes;",
		"hermes:   the container keeps running (this process is `sleep infinity`).",
		"hermes:   The dashboard is supervised alongside when HERMES_DASHBOARD=1.",
		"hermes: To run the gateway in the foreground instead (container exit",
		"hermes: code = gateway exit code), pass --no-supervise or set",
		"hermes: HERMES_GATEWAY_NO_SUPERVISE=1.",
		"hermes: Status: hermes gateway status    Logs: docker logs",
	}
	if desired == profile.Stopped {
		lines = append(lines[:3], append([]string{
			"hermes:   It was stopped with `hermes gateway stop` and stays stopped;",
			"hermes:   `hermes gateway start` starts it.",
		}, lines[3:]...)...)
	}
	lines = append(lines, "================================================================")
	return strings.Join(lines, "\n") + "\n"
}

func (f *Front) gatewayRun(inv cmdline.Line, args []string) error {
	mode, _ := Decide(f.UnderS6, f.Getenv, args)
	if mode == Foreground {
		// The agent gets the command line as given: --no-supervise too, or
		// the agent's own s6 redirect (hermes_cli/gateway.py
		// _maybe_redirect_run_to_s6_supervision) would supervise it after all.
		if err := f.becomeHermes(); err != nil {
			return err
		}
		f.ensureAPIKey(inv.Profile)
		bin := f.agentBin()
		argv := append([]string{bin}, inv.Global...)
		argv = append(argv, "gateway", "run")
		argv = append(argv, args...)
		if err := f.Sys.Exec(bin, argv, f.agentEnv()); err != nil {
			return fail(127, "cannot run the agent %s: %v (set HERMES_AGENT_BIN)", bin, err)
		}
		return nil
	}
	slot, err := f.ensureSlot(inv.Profile)
	if err != nil {
		return err
	}
	desired, err := profile.ReadState(f.home(), inv.Profile)
	if err != nil || desired != profile.Stopped {
		desired = profile.Running
		if err := profile.WriteState(f.home(), inv.Profile, profile.Running, f.UID, f.GID); err != nil {
			return fail(1, "%v", err)
		}
		if err := f.S6.Start(slot); err != nil {
			return fail(1, "starting %s: %v", slot, err)
		}
	}
	fmt.Fprint(f.Stderr, Breadcrumb(slot, desired))
	return f.sleepForever()
}

// ensureSlot returns the slot of a profile, registering it if needed.
func (f *Front) ensureSlot(name string) (string, error) {
	slot := profile.Slot(name)
	if f.S6.Exists(slot) {
		return slot, nil
	}
	if !profile.Exists(f.home(), name) {
		return "", fail(1, "no such gateway '%s': create it with `hermes profile create %s`", name, name)
	}
	if err := f.Admin.Register(name); err != nil {
		return "", fail(1, "registering %s: %v", slot, err)
	}
	return slot, nil
}

// sleepForever becomes `sleep infinity`; if that cannot be exec'd it blocks
// until SIGTERM/SIGINT and exits 128+signal.
func (f *Front) sleepForever() error {
	if path, err := exec.LookPath("sleep"); err == nil {
		err = f.Sys.Exec(path, []string{"sleep", "infinity"}, f.Environ)
		fmt.Fprintf(f.Stderr, "hermes: cannot exec %s (%v); waiting for a signal instead\n", path, err)
	}
	sig := f.Sys.WaitSignal()
	return fail(128+sig, "")
}
