package s6

import (
	"fmt"
	"strconv"
	"strings"
)

// Status is the state of one slot as s6-supervise reports it.
type Status struct {
	Up         bool
	WantUp     bool
	NormallyUp bool
	Ready      bool
	Pid        int     // 0 when down
	ExitCode   int     // last exit code, -1 if none or killed by a signal
	Signal     string  // last signal (e.g. SIGTERM), "" if none
	Seconds    float64 // seconds in the current up/down state
}

// SvstatFields are the s6-svstat -o fields Status is parsed from. They are
// the same in s6 2.11 (Debian bookworm), 2.13/2.14 (trixie, s6-overlay 3.2).
const SvstatFields = "up,wantedup,normallyup,ready,pid,exitcode,signal,updownfor"

// Status queries slot name with s6-svstat.
func (m *Manager) Status(name string) (Status, error) {
	if err := m.mustExist(name); err != nil {
		return Status{}, err
	}
	out, err := m.run("s6-svstat", "-o", SvstatFields, m.Dir(name))
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(out)
}

// ParseStatus parses one line of `s6-svstat -o` output for SvstatFields.
func ParseStatus(line string) (Status, error) {
	f := strings.Fields(line)
	if len(f) != 8 {
		return Status{}, fmt.Errorf("s6-svstat: unexpected output %q (want 8 fields)", strings.TrimSpace(line))
	}
	var st Status
	var err error
	bools := []*bool{&st.Up, &st.WantUp, &st.NormallyUp, &st.Ready}
	for i, p := range bools {
		if *p, err = strconv.ParseBool(f[i]); err != nil {
			return Status{}, fmt.Errorf("s6-svstat: field %d %q: %w", i+1, f[i], err)
		}
	}
	if st.Pid, err = strconv.Atoi(f[4]); err != nil {
		return Status{}, fmt.Errorf("s6-svstat: pid %q: %w", f[4], err)
	}
	if st.Pid < 0 {
		st.Pid = 0
	}
	if st.ExitCode, err = strconv.Atoi(f[5]); err != nil {
		return Status{}, fmt.Errorf("s6-svstat: exitcode %q: %w", f[5], err)
	}
	if f[6] != "NA" {
		st.Signal = f[6]
	}
	if st.Seconds, err = strconv.ParseFloat(f[7], 64); err != nil {
		return Status{}, fmt.Errorf("s6-svstat: updownfor %q: %w", f[7], err)
	}
	return st, nil
}

// String renders the status like s6-svstat's human line, without "normally
// up/down": what persists is the desired state, which the front prints.
func (st Status) String() string {
	var b strings.Builder
	if st.Up {
		fmt.Fprintf(&b, "up (pid %d) %.0f seconds", st.Pid, st.Seconds)
	} else {
		b.WriteString("down")
		switch {
		case st.Signal != "":
			fmt.Fprintf(&b, " (signal %s)", st.Signal)
		case st.ExitCode >= 0:
			fmt.Fprintf(&b, " (exitcode %d)", st.ExitCode)
		}
		fmt.Fprintf(&b, " %.0f seconds", st.Seconds)
	}
	if st.WantUp != st.Up {
		if st.WantUp {
			b.WriteString(", want up")
		} else {
			b.WriteString(", want down")
		}
	}
	return b.String()
}

// LastDeath asks s6-svdt how slot name's service last died: its exit code,
// or the signal that killed it. ok is false when s6 recorded no death. It
// tells what happened when a service died and was restarted between two
// looks at its status.
func (m *Manager) LastDeath(name string) (st Status, ok bool, err error) {
	if err := m.mustExist(name); err != nil {
		return Status{}, false, err
	}
	out, err := m.run("s6-svdt", "-n", "1", m.Dir(name))
	if err != nil {
		return Status{}, false, err
	}
	return ParseDeath(out)
}

// ParseDeath parses the last line of s6-svdt output ("@TAI64N exitcode 70"
// or "@TAI64N signal SIGKILL") into ExitCode or Signal.
func ParseDeath(out string) (st Status, ok bool, err error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) == 0 {
		return Status{}, false, nil
	}
	st.ExitCode = -1
	switch {
	case len(f) == 3 && f[1] == "exitcode":
		if st.ExitCode, err = strconv.Atoi(f[2]); err != nil {
			return Status{}, false, fmt.Errorf("s6-svdt: exit code %q: %w", f[2], err)
		}
	case len(f) == 3 && f[1] == "signal":
		st.Signal = f[2]
	default:
		return Status{}, false, fmt.Errorf("s6-svdt: unexpected output %q", strings.TrimSpace(out))
	}
	return st, true, nil
}
