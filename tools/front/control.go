package front

import (
	"errors"
	"fmt"
	"sort"

	"github.com/hermes-agent/hermes-s6/tools/cmdline"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
)

func (f *Front) requireS6(verb string) error {
	if !f.UnderS6 {
		return fail(1, "`gateway %s` needs s6 supervision, and PID 1 is not s6-svscan on %s (run it inside the container)", verb, s6.DefaultScanDir)
	}
	return nil
}

// gatewaySlots lists the registered gateway slots with their profiles.
func (f *Front) gatewaySlots() (map[string]string, error) {
	slots, err := f.S6.Slots()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range slots {
		if s.Kind == render.KindGateway {
			out[s.Name] = s.Profile
		}
	}
	return out, nil
}

func (f *Front) gatewayControl(inv cmdline.Line, verb string, args []string) error {
	all := false
	for _, a := range args {
		switch a {
		case "--all":
			all = true
		default:
			return fail(2, "gateway %s: unknown argument %q", verb, a)
		}
	}
	if all && verb == "start" {
		return fail(2, "refusing `gateway start --all`: start gateways one at a time with `hermes -p NAME gateway start`")
	}
	if all && inv.HasProfile {
		return fail(2, "gateway %s: use either -p NAME or --all, not both", verb)
	}
	if err := f.requireS6(verb); err != nil {
		return err
	}
	targets := map[string]string{}
	if all {
		slots, err := f.gatewaySlots()
		if err != nil {
			return err
		}
		targets = slots
	} else {
		slot, err := f.ensureSlot(inv.Profile)
		if err != nil {
			return err
		}
		targets[slot] = inv.Profile
	}
	names := make([]string, 0, len(targets))
	for slot := range targets {
		names = append(names, slot)
	}
	sort.Strings(names)
	var firstErr error
	for _, slot := range names {
		if err := f.control(verb, slot, targets[slot], all); err != nil {
			fmt.Fprintln(f.Stderr, "hermes: "+err.Error())
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return fail(exitCodeOf(firstErr), "")
	}
	return nil
}

func exitCodeOf(err error) int {
	var se *s6.Error
	if errors.As(err, &se) && se.Code > 0 {
		return se.Code
	}
	var ae *slotadmin.ExitError
	if errors.As(err, &ae) && ae.Code > 0 {
		return ae.Code
	}
	return 1
}

func (f *Front) control(verb, slot, name string, all bool) error {
	switch verb {
	case "start":
		if err := profile.WriteState(f.home(), name, profile.Running, f.UID, f.GID); err != nil {
			return err
		}
		if err := f.S6.Start(slot); err != nil {
			return fmt.Errorf("starting %s: %w", slot, err)
		}
		fmt.Fprintf(f.Stdout, "%s: started\n", slot)
	case "stop":
		if err := profile.WriteState(f.home(), name, profile.Stopped, f.UID, f.GID); err != nil {
			return err
		}
		if err := f.S6.Stop(slot, true); err != nil {
			return fmt.Errorf("stopping %s: %w", slot, err)
		}
		fmt.Fprintf(f.Stdout, "%s: stopped\n", slot)
	case "restart":
		if all {
			// --all restarts what runs; it never starts what was stopped.
			st, err := f.S6.Status(slot)
			if err != nil {
				return err
			}
			if !st.WantUp {
				fmt.Fprintf(f.Stdout, "%s: not running, left alone\n", slot)
				return nil
			}
		}
		if err := profile.WriteState(f.home(), name, profile.Running, f.UID, f.GID); err != nil {
			return err
		}
		if err := f.S6.Restart(slot); err != nil {
			return fmt.Errorf("restarting %s: %w", slot, err)
		}
		fmt.Fprintf(f.Stdout, "%s: restarted\n", slot)
	case "status":
		return f.status(slot, name)
	}
	return nil
}

func (f *Front) status(slot, name string) error {
	st, err := f.S6.Status(slot)
	if err != nil {
		return fmt.Errorf("status of %s: %w", slot, err)
	}
	desired, derr := profile.ReadState(f.home(), name)
	d := string(desired)
	if derr != nil {
		d = "not recorded"
		if !errors.Is(derr, profile.ErrNoState) {
			d = "unreadable"
		}
	}
	fmt.Fprintf(f.Stdout, "%s: %s; desired: %s\n", slot, st, d)
	for _, line := range f.Sys.History(slot, 5) {
		fmt.Fprintf(f.Stdout, "  %s\n", line)
	}
	return nil
}
