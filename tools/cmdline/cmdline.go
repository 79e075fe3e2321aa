// Package cmdline reads a `hermes` command line: the global profile options,
// then the command. The front parses what it is asked to do with it, and the
// boot reconciler reads the container's CMD with it, so both see the same
// profile and the same opt-out.
package cmdline

import (
	"fmt"
	"strings"

	"github.com/hermes-agent/hermes-s6/tools/profile"
)

// NoSuperviseFlag and NoSuperviseEnv opt `gateway run` out of supervision.
const (
	NoSuperviseFlag = "--no-supervise"
	NoSuperviseEnv  = "HERMES_GATEWAY_NO_SUPERVISE"
)

// Line is a command line split into its global options and the rest.
type Line struct {
	// Profile is the profile the global options name (the last one given
	// wins, as with argparse), or profile.Default.
	Profile string
	// HasProfile: a -p/--profile option was given.
	HasProfile bool
	// Global are the global options as given, to pass on to the agent.
	Global []string
	// Rest is the command and its arguments.
	Rest []string
}

// UsageError is a command line that cannot be read (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Parse reads the global options (`-p NAME`, `--profile NAME`,
// `--profile=NAME`) up to the first other word.
func Parse(args []string) (Line, error) {
	l := Line{Profile: profile.Default}
	for len(args) > 0 {
		a := args[0]
		var name string
		switch {
		case a == "-p" || a == "--profile":
			if len(args) < 2 {
				return l, &UsageError{a + " needs a profile name"}
			}
			name = args[1]
			l.Global = append(l.Global, args[:2]...)
			args = args[2:]
		case strings.HasPrefix(a, "--profile="):
			name = strings.TrimPrefix(a, "--profile=")
			l.Global = append(l.Global, a)
			args = args[1:]
		default:
			l.Rest = args
			return l, nil
		}
		if err := profile.Validate(name); err != nil {
			return l, &UsageError{err.Error()}
		}
		l.Profile, l.HasProfile = name, true
	}
	return l, nil
}

// ParseCMD reads a container's CMD: the same line, with a leading `hermes`
// (or a path ending in /hermes) dropped.
func ParseCMD(cmd []string) (Line, error) {
	if len(cmd) > 0 && (cmd[0] == "hermes" || strings.HasSuffix(cmd[0], "/hermes")) {
		cmd = cmd[1:]
	}
	return Parse(cmd)
}

// Is reports whether the command is words (e.g. "gateway", "run").
func (l Line) Is(words ...string) bool {
	if len(l.Rest) < len(words) {
		return false
	}
	for i, w := range words {
		if l.Rest[i] != w {
			return false
		}
	}
	return true
}

// GatewayRun reports whether the line is `gateway run`, and its arguments.
func (l Line) GatewayRun() ([]string, bool) {
	if !l.Is("gateway", "run") {
		return nil, false
	}
	return l.Rest[2:], true
}

// HasFlag reports whether flag is among args before a `--`.
func HasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == flag {
			return true
		}
	}
	return false
}

// OptOut says whether `gateway run` with args stays in the foreground by the
// user's choice (--no-supervise, or NoSuperviseEnv truthy), and why.
func OptOut(args []string, getenv func(string) string) (bool, string) {
	if HasFlag(args, NoSuperviseFlag) {
		return true, NoSuperviseFlag
	}
	if v := getenv(NoSuperviseEnv); profile.Truthy(v) {
		return true, fmt.Sprintf("%s=%s", NoSuperviseEnv, v)
	}
	return false, ""
}

// Ownership reads a container's CMD: which
// profile a foreground (`--no-supervise`) gateway owns ("" none), and
// whether the CMD is the dashboard alone (no gateway runs in this container
// at all). A CMD that cannot be read owns nothing.
func Ownership(cmd []string, getenv func(string) string) (owner string, noGateways bool) {
	l, err := ParseCMD(cmd)
	if err != nil {
		return "", false
	}
	if l.Is("dashboard") {
		return "", true
	}
	if args, ok := l.GatewayRun(); ok {
		if out, _ := OptOut(args, getenv); out {
			return l.Profile, false
		}
	}
	return "", false
}
