package front

import (
	"fmt"
	"sort"

	"github.com/hermes-agent/hermes-s6/tools/cmdline"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
)

func (f *Front) profileCmd(verb string, args []string) error {
	if verb == "list" {
		if len(args) != 0 {
			return fail(2, "profile list takes no arguments")
		}
		return f.profileList()
	}
	if verb == "delete" {
		// The agent's own confirmation flag: accepted, and implied.
		var rest []string
		for _, a := range args {
			if a != "-y" && a != "--yes" {
				rest = append(rest, a)
			}
		}
		args = rest
	}
	if len(args) != 1 {
		return fail(2, "usage: hermes profile %s NAME", verb)
	}
	name := args[0]
	if err := profile.Validate(name); err != nil {
		return fail(2, "%v", err)
	}
	if name == profile.Default {
		return fail(2, "the default profile always exists and cannot be %sd", verb)
	}
	if verb == "create" {
		return f.profileCreate(name)
	}
	return f.profileDelete(name)
}

// agent runs the agent to completion (not exec) with args.
func (f *Front) agent(args ...string) error {
	bin := f.agentBin()
	code, err := f.Sys.Run(bin, append([]string{bin}, args...), f.agentEnv())
	if err != nil {
		return fail(127, "cannot run the agent %s: %v", bin, err)
	}
	if code != 0 {
		return fail(code, "")
	}
	return nil
}

func (f *Front) profileCreate(name string) error {
	if profile.Exists(f.home(), name) {
		return fail(1, "profile '%s' already exists", name)
	}
	if err := f.agent("profile", "create", name); err != nil {
		return err
	}
	if !f.UnderS6 {
		fmt.Fprintf(f.Stdout, "created profile %s\n", name)
		return nil
	}
	if err := f.Admin.Register(name); err != nil {
		return fail(1, "profile %s created, but registering its slot failed: %v", name, err)
	}
	fmt.Fprintf(f.Stdout, "created profile %s (slot %s, down): start it with `hermes -p %s gateway start`\n", name, profile.Slot(name), name)
	return nil
}

func (f *Front) profileDelete(name string) error {
	if !profile.Exists(f.home(), name) {
		return fail(1, "no such profile '%s'", name)
	}
	slot := profile.Slot(name)
	if f.UnderS6 && f.S6.Exists(slot) {
		if err := f.Admin.Unregister(name); err != nil {
			return fail(exitCodeOf(err), "stopping and removing %s: %v", slot, err)
		}
	}
	// --yes: the agent asks "Type 'NAME' to confirm" otherwise, and with no
	// terminal prints "Cancelled." and exits 0 (hermes_cli/profiles.py
	// delete_profile): the front has decided already.
	if err := f.agent("profile", "delete", name, "--yes"); err != nil {
		return err
	}
	fmt.Fprintf(f.Stdout, "deleted profile %s\n", name)
	return nil
}

func (f *Front) profileList() error {
	names, _, err := profile.List(f.home())
	if err != nil {
		return fail(1, "listing profiles: %v", err)
	}
	for _, n := range names {
		line := n
		if f.UnderS6 {
			if st, err := f.S6.Status(profile.Slot(n)); err == nil {
				line += "\t" + profile.Slot(n) + "\t" + st.String()
			} else {
				line += "\t" + profile.Slot(n) + "\tnot registered"
			}
		}
		fmt.Fprintln(f.Stdout, line)
	}
	return nil
}

// healthcheck is the image's HEALTHCHECK: unhealthy exactly when a gateway
// that should be running does not answer /health. A gateway should run when
// its desired state is running or its slot is wanted up, unless the CMD is
// the dashboard alone. A foreground (--no-supervise) gateway answers for its
// profile itself, so it is healthy while it serves.
func (f *Front) healthcheck() error {
	if !f.UnderS6 {
		return fail(1, "unhealthy: not under s6 supervision")
	}
	if _, noGateways := cmdline.Ownership(f.Sys.CMD(), f.Getenv); noGateways {
		fmt.Fprintln(f.Stdout, "healthy (dashboard container: no gateway runs here)")
		return nil
	}
	slots, err := f.gatewaySlots()
	if err != nil {
		return fail(1, "unhealthy: %v", err)
	}
	names := make([]string, 0, len(slots))
	for slot := range slots {
		names = append(names, slot)
	}
	sort.Strings(names)
	bad := 0
	for _, slot := range names {
		name := slots[slot]
		desired, derr := profile.ReadState(f.home(), name)
		st, serr := f.S6.Status(slot)
		wantUp := serr == nil && st.WantUp
		if !wantUp && (derr != nil || desired != profile.Running) {
			continue
		}
		if err := f.Sys.Health(f.home(), name); err != nil {
			why := "down"
			if serr == nil && st.Up {
				why = "up"
			} else if serr == nil && st.ExitCode == render.ExitConfig {
				why = fmt.Sprintf("down after exit %d (fatal configuration)", render.ExitConfig)
			}
			fmt.Fprintf(f.Stderr, "hermes: unhealthy: %s should be running (slot %s) but %v\n", slot, why, err)
			bad++
		}
	}
	if bad > 0 {
		return fail(1, "")
	}
	fmt.Fprintln(f.Stdout, "healthy")
	return nil
}
