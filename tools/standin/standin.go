// Package standin implements hermes-agent-standin, a deliberate test double
// for the upstream Hermes agent (a Python program).
//
// Test container images install it in place of the real agent so that process
// supervision (starting, stopping, restarting, replacing and crash handling)
// can be exercised without network access. It talks to no model and does no
// agent work; it only honours the process-level contract of the agent:
//
//	hermes-agent-standin [-p NAME | --profile NAME | --profile=NAME] COMMAND
//
//	gateway run [--replace]     foreground gateway of the selected profile
//	dashboard [--host H] [--port P] [--no-open]
//	profile create|delete NAME  manage $HERMES_HOME/profiles/NAME
//	profile list                "default" first, then the others sorted
//	version | help | -h | --help
//
// Profile "default" lives in $HERMES_HOME (default /opt/data), profile NAME in
// $HERMES_HOME/profiles/NAME. The gateway reads an optional flat config.yaml
// in the profile directory, listens on API_SERVER_HOST:port, keeps
// gateway.pid in the profile directory while it runs, answers GET /health,
// and simulates crashes on POST /debug/crash. See [Usage] for the full text
// and the exit codes.
//
// All behaviour is reachable through [Main], which returns the exit code
// instead of exiting, so that it can be unit-tested.
package standin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// Program is the name used in every log and error line.
const Program = "hermes-agent-standin"

// Version is reported by the version command.
const Version = "0.1.0"

// Exit codes, following sysexits(3) where one applies.
const (
	exitOK      = 0
	exitFailure = 1  // runtime failure: cannot listen, cannot write a file, ...
	exitUsage   = 2  // bad command line
	exitCrash   = 70 // EX_SOFTWARE: simulated crash via POST /debug/crash
	exitConfig  = 78 // EX_CONFIG: invalid config.yaml, fail_start, missing profile
)

const defaultProfile = "default"

// Usage is printed by help, -h and --help.
const Usage = `hermes-agent-standin: STAND-IN for the Hermes agent, for tests only.

This program is a deliberate test double. Test container images run it in
place of the upstream Hermes agent (a Python program) so that process
supervision can be tested without network access. It talks to no model and
does no agent work.

Usage:
  hermes-agent-standin [-p NAME | --profile NAME | --profile=NAME] COMMAND [ARGS]

Commands:
  gateway run [--replace]    run the gateway of the selected profile in the
                             foreground until SIGTERM or SIGINT
  dashboard [--host H] [--port P] [--no-open]
                             serve a placeholder dashboard page
                             (default 127.0.0.1:9119; --no-open is accepted,
                             no browser is ever opened)
  profile create NAME        create $HERMES_HOME/profiles/NAME with a config.yaml
  profile delete NAME        delete $HERMES_HOME/profiles/NAME
  profile list               list profiles, "default" first, then sorted
  version                    print the version
  help, -h, --help           print this help

Profiles:
  "default" (or no -p) uses $HERMES_HOME, created if missing; NAME uses
  $HERMES_HOME/profiles/NAME, which must exist. HERMES_HOME defaults to
  /opt/data. Names must match ^[a-z0-9][a-z0-9_-]{0,62}$.

Gateway:
  Listens on $API_SERVER_HOST (default 0.0.0.0) at port api_server_port from
  config.yaml, else $API_SERVER_PORT, else 8642. Once listening it writes its
  pid to PROFILEDIR/gateway.pid and logs
    hermes-agent-standin: gateway[PROFILE] started pid=PID port=PORT
  On SIGTERM or SIGINT it logs "received SIGTERM, shutting down", waits
  stop_delay_ms, stops serving, removes gateway.pid, logs "stopped", exits 0.
  --replace first stops the live process named in gateway.pid (SIGTERM, then
  SIGKILL if it is still alive after 10s) and waits for it to exit.
  If $HERMES_STANDIN_ENV_DUMP names a file, the full environment is written
  there at start, one KEY=VALUE per line, sorted.

Gateway HTTP endpoints:
  GET  /health                   200 {"status":"ok","pid":PID,"profile":"NAME","port":PORT}
  POST /debug/crash              simulated crash: answers 202, then exits at
                                 once with code 70, leaving gateway.pid behind
  POST /debug/crash?signal=KILL  answers 202, then kills itself with SIGKILL

Dashboard HTTP endpoints:
  GET  /                         small HTML page "Hermes dashboard (stand-in)"
  GET  /health                   200 {"status":"ok","pid":PID}

config.yaml (PROFILEDIR/config.yaml, optional):
  Only blank lines, "# comment" lines and flat "key: value" lines; values may
  be quoted and may carry a trailing " # comment". Any other line (indented,
  list item, flow collection, ...) makes the config invalid. Known keys:
    api_server_port: 1..65535
    stop_delay_ms:   integer >= 0; delay between SIGTERM and exit, simulating
                     a gateway that flushes state
    fail_start:      true or false; true refuses to start (exit 78)
  Unknown keys are ignored. A bad value for a known key, or a duplicate key,
  makes the config invalid.

Exit codes:
  0   success, or clean stop on SIGTERM/SIGINT
  1   runtime failure (cannot listen, cannot write files, profile exists, ...)
  2   usage error (unknown command, bad option, invalid profile name)
  70  simulated crash via POST /debug/crash
  78  invalid configuration: bad config.yaml, fail_start: true, bad
      API_SERVER_PORT, or missing profile directory
`

var profileNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// exitError carries the exit code a failure maps to. A nil err means the
// message has already been printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func failf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// Main runs the stand-in with args (without the program name) and returns
// the process exit code. Log lines go to stdout, errors to stderr, each
// written with a single unbuffered Write.
func Main(args []string, stdout, stderr io.Writer) int {
	err := run(args, stdout, stderr)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "%s: %v\n", Program, err)
	return code
}

func run(args []string, stdout, stderr io.Writer) error {
	profileName, args, err := parseGlobalOptions(args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return &exitError{code: exitUsage}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return nil
	case "version":
		fmt.Fprintf(stdout, "%s %s (stand-in for the Hermes agent)\n", Program, Version)
		return nil
	case "gateway":
		if len(rest) == 0 || rest[0] != "run" {
			return failf(exitUsage, "unknown command %q (the only gateway command is \"gateway run\")", joinCommand(cmd, rest))
		}
		p, err := resolveProfile(profileName)
		if err != nil {
			return err
		}
		return runGateway(p, rest[1:], stdout, stderr)
	case "dashboard":
		return runDashboard(rest, stdout, stderr)
	case "profile":
		return runProfile(rest, stdout, stderr)
	default:
		return failf(exitUsage, "unknown command %q", cmd)
	}
}

// parseGlobalOptions consumes -p/--profile options that precede the command
// and validates the profile name.
func parseGlobalOptions(args []string) (profileName string, rest []string, err error) {
	profileName = defaultProfile
	for len(args) > 0 {
		arg := args[0]
		switch {
		case arg == "-p" || arg == "--profile":
			if len(args) < 2 {
				return "", nil, failf(exitUsage, "option %s needs a profile name", arg)
			}
			profileName, args = args[1], args[2:]
		case strings.HasPrefix(arg, "--profile="):
			profileName, args = strings.TrimPrefix(arg, "--profile="), args[1:]
		default:
			return profileName, args, validateProfileName(profileName)
		}
	}
	return profileName, args, validateProfileName(profileName)
}

func validateProfileName(name string) error {
	if !profileNamePattern.MatchString(name) {
		return failf(exitUsage, "invalid profile name %q: must match %s", name, profileNamePattern)
	}
	return nil
}

func joinCommand(cmd string, rest []string) string {
	if len(rest) == 0 {
		return cmd
	}
	return cmd + " " + rest[0]
}

// signalName names the signals the stand-in handles the way the log lines
// spell them.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}

// lineLogger writes one prefixed line per call with a single Write.
type lineLogger struct {
	w      io.Writer
	prefix string
}

func (l lineLogger) printf(format string, args ...any) {
	fmt.Fprintf(l.w, "%s%s\n", l.prefix, fmt.Sprintf(format, args...))
}
