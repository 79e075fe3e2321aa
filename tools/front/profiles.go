package front

import (
	"errors"
	"fmt"

	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

func (f *Front) profileCmd(verb string, args []string) error {
	if verb == "list" {
		if len(args) != 0 {
			return fail(2, "profile list takes no arguments")
		}
		return f.profileList()
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
	code, err := f.Run(bin, append([]string{bin}, args...), f.Environ)
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
	if err := f.S6.Register(f.gatewaySlot(name)); err != nil && !errors.Is(err, s6.ErrExists) {
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
		if err := f.S6.Unregister(slot); err != nil {
			return fail(exitCodeOf(err), "stopping and removing %s: %v", slot, err)
		}
	}
	if err := f.agent("profile", "delete", name); err != nil {
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

func (f *Front) healthcheck() error {
	if !f.UnderS6 {
		return fail(1, "unhealthy: not under s6 supervision")
	}
	slots, err := f.gatewaySlots()
	if err != nil {
		return fail(1, "unhealthy: %v", err)
	}
	bad := 0
	for slot, name := range slots {
		desired, err := profile.ReadState(profile.Dir(f.home(), name))
		if err != nil || desired != profile.Running {
			continue
		}
		st, err := f.S6.Status(slot)
		if err != nil || !st.Up {
			fmt.Fprintf(f.Stderr, "hermes: unhealthy: %s should be running but is down\n", slot)
			bad++
			continue
		}
		if f.Health != nil {
			if err := f.Health(name); err != nil {
				fmt.Fprintf(f.Stderr, "hermes: unhealthy: %s: %v\n", slot, err)
				bad++
			}
		}
	}
	if bad > 0 {
		return fail(1, "")
	}
	fmt.Fprintln(f.Stdout, "healthy")
	return nil
}
