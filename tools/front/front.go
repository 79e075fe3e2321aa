// Package front is the in-container `hermes` command. It owns the
// supervision verbs (gateway run/start/stop/restart/status, profile
// create/delete/list, healthcheck) and hands every other command to the agent
// binary named by HERMES_AGENT_BIN, argv and exit code preserved.
package front

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/cmdline"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
)

// DefaultAgentBin is the agent binary when HERMES_AGENT_BIN is not set.
const DefaultAgentBin = "/opt/hermes/bin/hermes-agent"

// Front is one invocation of the `hermes` command with its surroundings.
type Front struct {
	Getenv  func(string) string
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	// UnderS6 is true when s6-svscan is PID 1 on the scan directory.
	UnderS6 bool
	// S6 supervises the slots.
	S6 Supervisor
	// Sys is every other effect on the process and the container.
	Sys System
	// Admin registers and removes profile slots: in this process for root,
	// through the root admin service (s6-sudo) for hermes.
	Admin slotadmin.Registrar
	// UID and GID own the files the front writes (-1: leave as is).
	UID, GID int
	// Euid is the effective uid (os.Geteuid).
	Euid int
}

// Supervisor is what the front asks of s6 (*s6.Manager is one).
type Supervisor interface {
	Exists(slot string) bool
	Slots() ([]s6.SlotRef, error)
	Status(slot string) (s6.Status, error)
	Start(slot string) error
	Stop(slot string, wait bool) error
	Restart(slot string) error
}

// System is every effect the front has besides its output and s6: on its
// own process (exec, a child, signals, directory, privileges) and what it
// reads of the running container. Host is the real one.
type System interface {
	// Exec replaces the process; it returns only on failure.
	Exec(path string, argv, env []string) error
	// Run runs a command to completion as hermes and returns its exit code.
	Run(path string, argv, env []string) (int, error)
	// WaitSignal blocks until SIGTERM or SIGINT and returns its number.
	WaitSignal() int
	// Chdir changes the working directory.
	Chdir(dir string) error
	// BecomeHermes drops root to the hermes user; dropped is false when
	// there is nothing to drop (not root, or no hermes account).
	BecomeHermes() (dropped bool, err error)
	// History returns the watcher's last n lines about a slot.
	History(slot string, n int) []string
	// Health asks a profile's gateway whether it serves (Probe).
	Health(home, profile string) error
	// CMD returns the container's command line (nil: none found).
	CMD() []string
}

// exitError carries an exit code and a one-line message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, a ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

// Main runs the command line args (without argv[0]) and returns the exit code.
func (f *Front) Main(args []string) int {
	err := f.supervisedChildSetup()
	if err == nil {
		err = f.dispatch(args)
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(f.Stderr, "hermes: "+ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(f.Stderr, "hermes: "+err.Error())
	return 1
}

func (f *Front) agentBin() string {
	if b := f.Getenv("HERMES_AGENT_BIN"); b != "" {
		return b
	}
	return DefaultAgentBin
}

func (f *Front) home() string { return profile.Home(f.Getenv) }

func (f *Front) dispatch(args []string) error {
	inv, err := cmdline.Parse(args)
	var usage *cmdline.UsageError
	if errors.As(err, &usage) {
		return fail(2, "%s", usage.Msg)
	}
	rest := inv.Rest
	if ownVerb(rest) {
		if err := profile.CheckHome(f.home()); err != nil {
			return fail(1, "%v", err)
		}
	}
	if len(rest) >= 1 {
		switch rest[0] {
		case "gateway":
			if len(rest) >= 2 {
				switch rest[1] {
				case "run":
					return f.gatewayRun(inv, rest[2:])
				case "start", "stop", "restart", "status":
					return f.gatewayControl(inv, rest[1], rest[2:])
				}
			}
		case "profile":
			if len(rest) >= 2 {
				switch rest[1] {
				case "create", "delete", "list":
					return f.profileCmd(rest[1], rest[2:])
				}
			}
		case "healthcheck":
			return f.healthcheck()
		}
	}
	return f.handOff(args)
}

// ownVerb reports whether args is one of the front's own verbs, which read
// and write under $HERMES_HOME.
func ownVerb(args []string) bool {
	switch {
	case len(args) >= 2 && args[0] == "gateway":
		return args[1] == "run" || args[1] == "start" || args[1] == "stop" || args[1] == "restart" || args[1] == "status"
	case len(args) >= 2 && args[0] == "profile":
		return args[1] == "create" || args[1] == "delete" || args[1] == "list"
	case len(args) >= 1:
		return args[0] == "healthcheck"
	}
	return false
}

// ExecAsRootEnv, when truthy, lets `docker exec` as root run the agent as
// root (upstream's docker/hermes-exec-shim.sh honours the same name).
const ExecAsRootEnv = "HERMES_DOCKER_EXEC_AS_ROOT"

// handOff execs the agent with argv preserved; its exit code is ours. As
// root (`docker exec CONTAINER hermes …`) it first becomes hermes, so that
// what the agent writes in the volume is hermes's, as upstream's image does.
func (f *Front) handOff(args []string) error {
	bin := f.agentBin()
	argv := append([]string{bin}, args...)
	if err := f.becomeHermes(); err != nil {
		return err
	}
	if err := f.Sys.Exec(bin, argv, f.agentEnv()); err != nil {
		return fail(127, "cannot run the agent %s: %v (set HERMES_AGENT_BIN)", bin, err)
	}
	return nil
}

// becomeHermes drops root to hermes before the agent is exec'd (unless
// ExecAsRootEnv says otherwise).
func (f *Front) becomeHermes() error {
	if profile.Truthy(f.Getenv(ExecAsRootEnv)) {
		return nil
	}
	dropped, err := f.Sys.BecomeHermes()
	if err != nil {
		return fail(1, "cannot become the hermes user to run the agent: %v (set %s=1 to run it as root)", err, ExecAsRootEnv)
	}
	if dropped {
		f.Euid = -1 // no longer root: the gateway's own API key may be written
	}
	return nil
}

// agentEnv is the agent's environment: HOME is $HERMES_HOME, as upstream's
// run scripts export it (libraries keep their state under $HOME).
func (f *Front) agentEnv() []string {
	env := make([]string, 0, len(f.Environ)+1)
	for _, kv := range f.Environ {
		if !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+f.home())
}

// ensureAPIKey gives the profile's gateway an API server key if it has none
// (agentcfg.EnsureAPIKey): without one the agent serves no /health. As
// root it does nothing (the gateway runs as hermes and writes its own).
func (f *Front) ensureAPIKey(name string) {
	if f.Euid == 0 {
		return
	}
	dir := profile.Dir(f.home(), name)
	gen, err := agentcfg.EnsureAPIKey(dir, f.Getenv, f.Euid)
	switch {
	case err != nil:
		fmt.Fprintf(f.Stderr, "hermes: warning: no API_SERVER_KEY for profile %s and none could be written to %s/.env: %v (the gateway will serve no /health)\n", name, dir, err)
	case gen:
		fmt.Fprintf(f.Stderr, "hermes: generated an API_SERVER_KEY for profile %s in %s/.env (turns on its API server and /health)\n", name, dir)
	}
}

// supervisedChildSetup moves a supervised child (started by a run script,
// HERMES_S6_SUPERVISED_CHILD=1) into $HERMES_HOME, where the agent expects
// to run; everything else keeps its working directory (docker run -w).
func (f *Front) supervisedChildSetup() error {
	if f.Getenv(render.SupervisedChildEnv) != "1" {
		return nil
	}
	if err := f.Sys.Chdir(f.home()); err != nil {
		return fail(111, "cannot enter HERMES_HOME: %v", err)
	}
	return nil
}
