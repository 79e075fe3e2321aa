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

// Front is one invocation of the `hermes` command with its surroundings,
// all injectable so the behaviour is testable on the host.
type Front struct {
	Getenv  func(string) string
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	// UnderS6 is true when s6-svscan is PID 1 on S6.ScanDir.
	UnderS6 bool
	S6      *s6.Manager
	// Exec replaces the process (syscall.Exec in production).
	Exec func(path string, argv, env []string) error
	// Run runs a command to completion and returns its exit code.
	Run func(path string, argv, env []string) (int, error)
	// UID and GID own the files the front writes (-1: leave as is).
	UID, GID int
	// Block waits for SIGTERM/SIGINT and returns the signal number; used when
	// `sleep infinity` cannot be exec'd.
	Block func() int
	// History returns recent watcher lines for a slot.
	History func(slot string, n int) []string
	// Health checks a gateway's /health; nil means healthy.
	Health func(profile string) error
	// Admin registers and removes profile slots: in this process for root,
	// through the root admin service (s6-sudo) for hermes.
	Admin slotadmin.Registrar
	// Euid is the effective uid (os.Geteuid).
	Euid int
	// BecomeHermes drops root to the hermes user before the agent is exec'd
	// for a command the front hands off; nil: stay who we are.
	BecomeHermes func() error
	// Chdir changes the working directory (os.Chdir); nil: never.
	Chdir func(string) error
	// CMD returns the container's command line (reconcile.FindCMD); nil: none.
	CMD func() []string
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
	if err := f.Exec(bin, argv, f.agentEnv()); err != nil {
		return fail(127, "cannot run the agent %s: %v (set HERMES_AGENT_BIN)", bin, err)
	}
	return nil
}

// becomeHermes drops root to hermes before the agent is exec'd (unless
// ExecAsRootEnv says otherwise).
func (f *Front) becomeHermes() error {
	if f.BecomeHermes == nil || profile.Truthy(f.Getenv(ExecAsRootEnv)) {
		return nil
	}
	if err := f.BecomeHermes(); err != nil {
		return fail(1, "cannot become the hermes user to run the agent: %v (set %s=1 to run it as root)", err, ExecAsRootEnv)
	}
	f.Euid = -1 // no longer root: the gateway's own API key may be written
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
	if f.Chdir == nil || f.Getenv(render.SupervisedChildEnv) != "1" {
		return nil
	}
	if err := f.Chdir(f.home()); err != nil {
		return fail(111, "cannot enter HERMES_HOME: %v", err)
	}
	return nil
}
