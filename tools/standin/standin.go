// Package standin implements hermes-agent-standin, a STAND-IN for the Hermes
// agent (NousResearch/hermes-agent, a Python program). It is a deliberate test
// double: test and hermetic container images install it as
// /opt/hermes/bin/hermes-agent so that supervision can be proven without
// network. It talks to no model and does no agent work.
//
// Where the image meets the agent, the stand-in behaves like the real agent at
// the pinned ref (00067189dfecf833d4d009c2dd977ae85cf800e0, v0.21.3). Every
// such behaviour carries a comment naming the agent file and function it
// mirrors; files not stored at the pin were read at a nearby commit, named in
// the comment. The contract points, in short:
//
//  1. API server (gateway/platforms/api_server.py, gateway/config.py,
//     hermes_cli/env_loader.py): GET /health, /v1/health and /health/detailed
//     are served only when the API server is enabled, which takes a usable
//     API_SERVER_KEY (16+ characters); host API_SERVER_HOST (default
//     127.0.0.1), port API_SERVER_PORT or config.yaml
//     platforms.api_server.extra.port (default 8642); the profile's .env
//     overrides the process environment.
//  2. config.yaml is real YAML; a file that cannot be parsed is logged and
//     treated as empty (gateway/config.py load_gateway_config).
//  3. gateway run takes the real flags and redirects itself under s6
//     (hermes_cli/gateway.py _maybe_redirect_run_to_s6_supervision).
//  4. gateway_state.json, gateway.pid and gateway.lock as gateway/status.py
//     writes them; unknown keys of gateway_state.json are kept.
//  5. SIGTERM exits 1 unless a planned-stop or takeover marker names the
//     process (then 0), SIGINT exits 0, SIGUSR1 exits 75 (gateway/run.py,
//     gateway/status.py, gateway/restart.py).
//  6. profile create/delete as hermes_cli/profiles.py create_profile /
//     delete_profile, registering and removing the s6 slot when s6 runs.
//  7. dashboard refuses a non-loopback bind without an auth provider
//     (hermes_cli/web_server.py start_server).
//  8. -p/--profile is pre-parsed anywhere before `--`
//     (hermes_cli/main.py _scan_profile_flag, _apply_profile_override).
//
// Test hooks that are NOT agent behaviour live under a top-level `standin:`
// mapping in config.yaml (stop_delay_ms, fail_start), in POST /debug/crash and
// in HERMES_STANDIN_ENV_DUMP; see [Usage].
//
// All behaviour is reachable through [System.Main], which returns the exit
// code instead of exiting, with the file-system root, the programs it runs
// and exec injectable for unit tests.
package standin

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// Program is the name used in the stand-in's own messages.
const Program = "hermes-agent-standin"

// Version is reported by the version command.
const Version = "0.2.0"

// AgentRef is the agent commit whose behaviour the stand-in mirrors.
const AgentRef = "00067189dfecf833d4d009c2dd977ae85cf800e0 (v0.21.3)"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2  // argparse's exit code for a bad command line
	exitCrash   = 70 // stand-in hook: POST /debug/crash
	// gateway/restart.py GATEWAY_SERVICE_RESTART_EXIT_CODE (EX_TEMPFAIL):
	// restart requested (SIGUSR1); also hermes dashboard/serve on a busy port.
	exitRestart = 75
	// gateway/restart.py GATEWAY_FATAL_CONFIG_EXIT_CODE (EX_CONFIG).
	exitConfig = 78
)

const defaultProfile = "default"

// Usage is printed by help, -h and --help.
const Usage = `hermes-agent-standin: STAND-IN for the Hermes agent, for tests only.

This program is a deliberate test double. Test and hermetic container images
run it in place of the real Hermes agent (NousResearch/hermes-agent, Python)
so that process supervision can be tested without network access. It talks
to no model and does no agent work. Where the image meets the agent it
behaves like the real agent at ` + AgentRef + `.

Usage:
  hermes-agent-standin [-p NAME | --profile NAME | --profile=NAME] COMMAND [ARGS]

Commands:
  gateway run [--replace] [--force] [--no-supervise] [-v|--verbose]...
              [-q|--quiet] [--accept-hooks] [--external-supervisor]
  dashboard [--host H] [--port P] [--no-open] [--insecure] [--skip-build]
            [--isolated]
  profile create NAME [--no-alias] [--no-skills]
  profile delete NAME [-y|--yes]
  profile list
  version | help | -h | --help

The contract with the image, point by point (agent file it mirrors):

 1. API server (gateway/platforms/api_server.py, gateway/config.py): the
    gateway listens only when the API server is enabled: a usable
    API_SERVER_KEY (16+ characters) enables it unless config.yaml says
    platforms.api_server.enabled: false. Enabled without a usable key
    (config.yaml enabled: true, or API_SERVER_ENABLED=true) it logs
    "Refusing to start: API_SERVER_KEY is required ..." and the gateway keeps
    running without listening. Host API_SERVER_HOST, default 127.0.0.1; port
    API_SERVER_PORT, else config.yaml platforms.api_server.extra.port, else
    8642. A port it cannot bind is logged and retried; the gateway keeps
    running. Unauthenticated:
      GET /health, GET /v1/health  200 {"status":"ok","platform":"hermes-agent"}
      GET /health/detailed         200 {"status":"ok","platform":"hermes-agent",
                                   "gateway_state":...,"platforms":{...},
                                   "active_agents":0,"exit_reason":...,
                                   "updated_at":...,"pid":PID}
 2. Environment (hermes_cli/env_loader.py): the profile's own
    $HERMES_HOME/.env (KEY=VALUE, "export ", quotes, comments) overrides the
    process environment, which overrides config.yaml, which overrides the
    defaults. config.yaml is YAML; one that cannot be parsed is logged and
    treated as empty (gateway/config.py load_gateway_config).
 3. gateway run under s6 (hermes_cli/gateway.py
    _maybe_redirect_run_to_s6_supervision, service_manager.py _s6_running):
    when /proc/1/comm is s6-svscan and /run/s6/basedir is a directory, and
    neither --no-supervise, HERMES_GATEWAY_NO_SUPERVISE in {1,true,yes} nor
    HERMES_S6_SUPERVISED_CHILD is set, it runs
    /command/s6-svc -u /run/service/gateway-PROFILE, records desired_state
    "running" in the profile's gateway_state.json, prints a breadcrumb on
    stderr and execs "sleep infinity". A missing slot or a failing s6-svc
    exits 1.
 4. Runtime files (gateway/status.py): gateway_state.json (pid, kind,
    gateway_state starting/running/stopped, ISO updated_at, other keys kept),
    gateway.pid (JSON, created exclusively), gateway.lock (flock held while
    running). A second gateway exits 1 ("Another gateway instance is already
    running (PID n).") unless --replace, which stops the first with a
    takeover marker.
 5. Signals (gateway/run.py, gateway/status.py, gateway/restart.py):
    SIGTERM exits 1, or 0 when .gateway-planned-stop.json or
    .gateway-takeover.json (60 s TTL) names this process; SIGINT exits 0;
    SIGUSR1 exits 75.
 6. profile create NAME (hermes_cli/profiles.py create_profile): builds
    profiles/.NAME.staging-PID (memories sessions skills skins logs plans
    workspace cron home, .env 0600, SOUL.md, config.yaml with the active
    profile's model block if it has one), renames it, and under s6 registers
    /run/service/gateway-NAME (down) and runs s6-svscanctl -a; a failed
    registration is printed and never fails the create.
    profile delete NAME [-y] (delete_profile): without --yes asks
    "Type 'NAME' to confirm: "; EOF or a mismatch prints "Cancelled." (exit 0).
 7. dashboard (hermes_cli/web_server.py start_server): refuses a bind other
    than 127.0.0.1, localhost or ::1 without an auth provider
    (HERMES_DASHBOARD_BASIC_AUTH_USERNAME + _PASSWORD or _PASSWORD_HASH,
    HERMES_DASHBOARD_OAUTH_CLIENT_ID, HERMES_DASHBOARD_OIDC_ISSUER +
    _OIDC_CLIENT_ID, or config.yaml dashboard.basic_auth), exit 78; a busy
    port prints BACKEND_PORT_IN_USE port=P, exit 75.
 8. Profiles (hermes_cli/main.py _scan_profile_flag, profiles.py
    resolve_profile_env): -p NAME, --profile NAME, --profile=NAME anywhere
    before "--"; names ^[a-z0-9][a-z0-9_-]{0,63}$ (not hermes, test, tmp,
    root, sudo); "default" is $HERMES_HOME itself (default ~/.hermes), NAME
    is <root>/profiles/NAME, which must exist:
    "Error: Profile 'x' does not exist. Create it with: hermes profile create x"
    (exit 1).

Stand-in-only test hooks (not agent behaviour):
  config.yaml, top level:
    standin:
      stop_delay_ms: N   wait N ms between a stop signal and the exit
      fail_start: true   refuse to start, exit 78 ("fatal configuration")
    A bad value for a hook refuses to start, exit 78.
  POST /debug/crash              on the API server: answers 202, exits 70
                                 at once, gateway.pid left behind
  POST /debug/crash?signal=KILL  answers 202, then SIGKILLs itself
  HERMES_STANDIN_ENV_DUMP=FILE   gateway run writes its process environment
                                 there, sorted, one KEY=VALUE per line

Exit codes: 0 clean or planned stop; 1 failure, unexpected SIGTERM, refused
start; 2 bad command line; 70 /debug/crash; 75 restart requested (SIGUSR1) or
dashboard port busy; 78 fatal configuration (dashboard without auth on a
public bind, standin.fail_start).
`

// System is one invocation of the stand-in with everything it touches that a
// unit test needs to replace.
type System struct {
	// Args0 is argv[0], recorded in gateway.pid like sys.argv[0].
	Args0 string
	// Environ is the process environment.
	Environ []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// Root prefixes the absolute system paths the stand-in reads and the s6
	// programs it runs (/proc/1/comm, /run/s6/basedir, /run/service,
	// /command/...): "" in production.
	Root string
	// Run runs a program to completion: its exit code and stderr.
	Run func(argv []string) (code int, stdout, stderr string, err error)
	// Exec replaces the process with the named program, looked up in PATH
	// like os.execvp. It returns only on failure.
	Exec func(name string, argv, env []string) error
	// Block keeps the process alive until SIGTERM and returns the exit code;
	// used when `sleep infinity` cannot be exec'd.
	Block func() int
}

// Main runs the stand-in with args (without the program name) on the real
// system and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return NewSystem(stdout, stderr).Main(args)
}

// NewSystem is the production System.
func NewSystem(stdout, stderr io.Writer) *System {
	return &System{
		Args0:   os.Args[0],
		Environ: os.Environ(),
		Stdin:   os.Stdin,
		Stdout:  stdout,
		Stderr:  stderr,
		Run:     runProgram,
		Exec:    execvp,
		Block:   blockUntilSIGTERM,
	}
}

func runProgram(argv []string) (int, string, string, error) {
	var out, errOut strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String(), nil
	}
	if err != nil {
		return -1, "", "", err
	}
	return 0, out.String(), errOut.String(), nil
}

func execvp(name string, argv, env []string) error {
	path := name
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			return err
		}
		path = p
	}
	return syscall.Exec(path, argv, env)
}

// blockUntilSIGTERM mirrors hermes_cli/gateway.py _block_until_terminated:
// SIGTERM exits 128+signum.
func blockUntilSIGTERM() int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	return 128 + int(syscall.SIGTERM)
}

// path maps an absolute system path under Root.
func (s *System) path(p string) string {
	if s.Root == "" {
		return p
	}
	return filepath.Join(s.Root, p)
}

func (s *System) outf(format string, a ...any) { fmt.Fprintf(s.Stdout, format, a...) }
func (s *System) errf(format string, a ...any) { fmt.Fprintf(s.Stderr, format, a...) }

// Main runs args and returns the exit code.
func (s *System) Main(args []string) int {
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		s.outf("%s", Usage) // before any profile resolution: help always works
		return exitOK
	}
	procEnv := newEnviron(s.Environ)
	inv, code, ok := s.resolveProfile(args, procEnv)
	if !ok {
		return code
	}
	// hermes_cli/main.py loads $HERMES_HOME/.env right after the profile
	// override, for every command (load_hermes_dotenv; env_loader.py
	// _load_dotenv_with_fallback(user_env, override=True)).
	inv.env.overlay(loadDotenv(filepath.Join(inv.home, ".env")))

	rest := inv.args
	if len(rest) == 0 {
		s.errf("%s", Usage)
		return exitUsage
	}
	switch cmd := rest[0]; cmd {
	case "help", "-h", "--help":
		s.outf("%s", Usage)
		return exitOK
	case "version":
		s.outf("%s %s (stand-in for the Hermes agent, mirrors %s)\n", Program, Version, AgentRef)
		return exitOK
	case "gateway":
		if len(rest) < 2 || rest[1] != "run" {
			return s.usageError("the stand-in only has \"gateway run\" (the image's front owns start/stop/restart/status)")
		}
		return s.gatewayRun(inv, rest[2:])
	case "dashboard":
		return s.dashboard(inv, rest[1:])
	case "profile":
		return s.profileCommand(inv, rest[1:])
	default:
		return s.usageError("invalid choice: %q", cmd)
	}
}

// usageError reports a bad command line the way argparse does: exit 2.
func (s *System) usageError(format string, a ...any) int {
	s.errf("usage: %s [-p NAME] COMMAND ... (see --help)\n%s: error: %s\n", Program, Program, fmt.Sprintf(format, a...))
	return exitUsage
}

// environ is an environment as a map; of a duplicated name the last entry
// wins, as in Python's os.environ.
type environ struct{ m map[string]string }

func newEnviron(list []string) *environ {
	e := &environ{m: map[string]string{}}
	for _, kv := range list {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.m[k] = v
		}
	}
	return e
}

func (e *environ) get(k string) string { return e.m[k] }

func (e *environ) lookup(k string) (string, bool) {
	v, ok := e.m[k]
	return v, ok
}

func (e *environ) set(k, v string) { e.m[k] = v }

func (e *environ) overlay(kvs []kv) {
	for _, p := range kvs {
		e.m[p.key] = p.value
	}
}

func (e *environ) list() []string {
	out := make([]string, 0, len(e.m))
	for k, v := range e.m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// truthyNoSupervise is HERMES_GATEWAY_NO_SUPERVISE's test in
// hermes_cli/gateway.py _maybe_redirect_run_to_s6_supervision:
// value.lower() in ("1", "true", "yes"), no trimming.
func truthyNoSupervise(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// truthyEnv is hermes_cli/gateway.py _truthy_env: stripped, lowered, in
// {1, true, yes, on}.
func truthyEnv(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// kv is one KEY=VALUE assignment of a .env file, in file order.
type kv struct{ key, value string }

var dotenvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// loadDotenv parses path the way python-dotenv's load_dotenv does for the
// common cases (hermes_cli/env_loader.py _load_dotenv_with_fallback): blank
// and "#" lines skipped, an optional "export " prefix, KEY=VALUE with the
// value single-quoted (literal), double-quoted (\n \t \" \\ escapes) or bare
// (an inline " #" comment and surrounding blanks removed). "KEY=" sets the
// empty string; a line without "=" sets nothing. Not mirrored: values
// spanning lines and ${VAR} interpolation. A missing or unreadable file is
// no assignment at all, like load_dotenv on a missing path.
func loadDotenv(path string) []kv {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []kv
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			line = strings.TrimPrefix(line, "\ufeff") // utf-8-sig
			first = false
		}
		if p, ok := parseDotenvLine(line); ok {
			out = append(out, p)
		}
	}
	return out
}

func parseDotenvLine(line string) (kv, bool) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || strings.HasPrefix(line, "#") {
		return kv{}, false
	}
	if rest, ok := strings.CutPrefix(line, "export "); ok {
		line = strings.TrimLeft(rest, " \t")
	}
	key, raw, found := strings.Cut(line, "=")
	if !found {
		return kv{}, false
	}
	key = strings.TrimSpace(key)
	if len(key) >= 2 && (key[0] == '\'' || key[0] == '"') && key[len(key)-1] == key[0] {
		key = key[1 : len(key)-1]
	}
	if !dotenvKey.MatchString(key) {
		return kv{}, false
	}
	return kv{key, dotenvValue(strings.TrimLeft(raw, " \t"))}, true
}

func dotenvValue(raw string) string {
	if raw == "" {
		return ""
	}
	switch q := raw[0]; q {
	case '\'':
		if end := strings.IndexByte(raw[1:], '\''); end >= 0 {
			return raw[1 : end+1]
		}
	case '"':
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			if c == '"' {
				return b.String()
			}
			if c == '\\' && i+1 < len(raw) {
				i++
				switch raw[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '\'':
					b.WriteByte(raw[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(raw[i])
				}
				continue
			}
			b.WriteByte(c)
		}
		// Unterminated: python-dotenv reads it as a bare value.
	}
	v := raw
	for i := 0; i < len(v); i++ {
		if v[i] == '#' && i > 0 && (v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return strings.TrimSpace(v)
}
