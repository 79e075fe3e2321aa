package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const shutdownTimeout = 5 * time.Second

// runFlags are the flags of `gateway run` (hermes_cli/subcommands/gateway.py
// build_gateway_parser, stored at 7d9c6eaf/08aa7b54; --external-supervisor
// from the pinned cli-commands.md and hermes_cli/gateway.py _cmd_run).
type runFlags struct {
	replace, force, noSupervise, quiet, acceptHooks, externalSupervisor bool
	verbose                                                             int // -v/--verbose, counted
}

const runUsage = "usage: " + Program + " gateway run [-h] [-v] [-q] [--replace] [--force] [--no-supervise] [--accept-hooks] [--external-supervisor]\n"

// parseRunFlags parses like argparse: short flags may be bundled (-vv, -vq).
func parseRunFlags(args []string) (f runFlags, help bool, err error) {
	for _, a := range args {
		switch a {
		case "--replace":
			f.replace = true
		case "--force":
			f.force = true
		case "--no-supervise":
			f.noSupervise = true
		case "--quiet":
			f.quiet = true
		case "--verbose":
			f.verbose++
		case "--accept-hooks":
			f.acceptHooks = true
		case "--external-supervisor":
			f.externalSupervisor = true
		case "-h", "--help":
			return f, true, nil
		default:
			if len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.Trim(a[1:], "vqh") == "" {
				for _, c := range a[1:] {
					switch c {
					case 'v':
						f.verbose++
					case 'q':
						f.quiet = true
					case 'h':
						return f, true, nil
					}
				}
				continue
			}
			return f, false, fmt.Errorf("unrecognized arguments: %s", a)
		}
	}
	return f, false, nil
}

// Log levels of Python's logging module.
const (
	levelDebug   = 10
	levelInfo    = 20
	levelWarning = 30
	levelError   = 40
)

// logger is the gateway's stderr handler (gateway/run.py start_gateway):
// format "%(levelname)s %(name)s: %(message)s"; -q/--quiet: none; default
// WARNING; -v INFO; -vv DEBUG.
type logger struct {
	mu    sync.Mutex
	w     io.Writer
	level int // 0: off
}

func newLogger(w io.Writer, f runFlags) *logger {
	l := &logger{w: w}
	switch {
	case f.quiet:
	case f.verbose == 0:
		l.level = levelWarning
	case f.verbose == 1:
		l.level = levelInfo
	default:
		l.level = levelDebug
	}
	return l
}

func (l *logger) log(level int, name, format string, a ...any) {
	if l.level == 0 || level < l.level {
		return
	}
	names := map[int]string{levelDebug: "DEBUG", levelInfo: "INFO", levelWarning: "WARNING", levelError: "ERROR"}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s: %s\n", names[level], name, fmt.Sprintf(format, a...))
}

// hook writes a stand-in hook's line on stderr, whatever the verbosity:
// these lines are not agent output.
func (s *System) hook(format string, a ...any) {
	s.errf("%s: [stand-in hook] %s\n", Program, fmt.Sprintf(format, a...))
}

// isSupervisorProcess mirrors gateway/restart.py
// is_gateway_supervisor_process as _running_under_gateway_supervisor
// describes it (pinned hermes_cli/gateway.py): systemd's INVOCATION_ID, the
// s6 run script's HERMES_S6_SUPERVISED_CHILD (and HERMES_SUPERVISED_CHILD),
// or --external-supervisor. Not mirrored: launchd's XPC_SERVICE_NAME.
func isSupervisorProcess(env *environ) bool {
	return env.get("INVOCATION_ID") != "" || env.get("HERMES_S6_SUPERVISED_CHILD") != "" ||
		env.get("HERMES_SUPERVISED_CHILD") != "" || truthyEnv(env.get("HERMES_GATEWAY_EXTERNAL_SUPERVISOR"))
}

// banner is printed on stdout by hermes_cli/gateway.py run_gateway.
const banner = "┌─────────────────────────────────────────────────────────┐\n" +
	"│           ☤ Hermes Gateway Starting...                 │\n" +
	"├─────────────────────────────────────────────────────────┤\n" +
	"│  Messaging platforms + cron scheduler                    │\n" +
	"│  Press Ctrl+C to stop                                   │\n" +
	"└─────────────────────────────────────────────────────────┘\n\n"

// crashRequest is the stand-in hook POST /debug/crash.
type crashRequest struct{ kill bool }

type gateway struct {
	s     *System
	inv   invocation
	log   *logger
	rec   pidRecord
	api   apiServer
	hooks hooks
	crash chan crashRequest

	mu  sync.Mutex
	srv *http.Server
}

// gatewayRun is `gateway run`: hermes_cli/gateway.py _cmd_run and
// run_gateway, then gateway/run.py start_gateway (pinned unless noted).
func (s *System) gatewayRun(inv invocation, args []string) int {
	f, help, err := parseRunFlags(args)
	if help {
		s.outf("%s", runUsage)
		return exitOK
	}
	if err != nil {
		s.errf("%s%s gateway run: error: %v\n", runUsage, Program, err)
		return exitUsage
	}
	if code, done := s.redirectToS6(inv, f.noSupervise); done {
		return code
	}
	if f.externalSupervisor {
		inv.env.set("HERMES_GATEWAY_EXTERNAL_SUPERVISOR", "1")
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	g := &gateway{s: s, inv: inv, log: newLogger(s.Stderr, f), crash: make(chan crashRequest, 1)}
	home := inv.home
	// Stand-in hook: the environment the process received.
	if path := newEnviron(s.Environ).get("HERMES_STANDIN_ENV_DUMP"); path != "" {
		env := slices.Sorted(slices.Values(s.Environ))
		if err := writeFileAtomic(path, []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
			s.hook("cannot write HERMES_STANDIN_ENV_DUMP: %v", err)
			return exitFailure
		}
	}
	if err := os.MkdirAll(home, 0o777); err != nil {
		g.log.log(levelError, "gateway.run", "Cannot create HERMES_HOME %s: %v", home, err)
		return exitFailure
	}
	// sys.argv: the -p/--profile flag has been stripped from it.
	g.rec = newPidRecord(home, append([]string{s.Args0}, inv.args...))

	// run_gateway: _guard_existing_gateway_process_conflict, skipped with
	// --replace or under a supervisor. Not mirrored: the root-in-the-official-
	// image, multiplexer and supervised-conflict guards.
	if !f.replace && !isSupervisorProcess(inv.env) {
		if pid := runningPID(home); pid != 0 && pid != os.Getpid() {
			s.outf("✗ Another gateway instance is already running (PID %d).\n", pid)
			s.outf("  Use 'hermes gateway restart' to replace it,\n")
			s.outf("  or 'hermes gateway stop' first.\n")
			s.outf("  Or use 'hermes gateway run --replace' to auto-replace.\n")
			return exitFailure
		}
	}
	s.outf("%s", banner)

	// gateway/config.py load_gateway_config (@0060041e): a config.yaml that
	// cannot be processed is logged and the gateway carries on without it.
	cfgPath := filepath.Join(home, "config.yaml")
	doc, _, err := loadYAML(cfgPath)
	if err != nil {
		g.log.log(levelWarning, "gateway.config", "Failed to process config.yaml — falling back to .env / gateway.json values. Check %s for syntax errors. Error: %v", cfgPath, err)
		doc = map[string]any{}
	}
	if g.hooks, err = standinHooks(doc); err != nil {
		s.hook("%s: %v; refusing to start (exit 78)", cfgPath, err)
		return exitConfig
	}
	if g.hooks.failStart {
		s.hook("%s sets standin.fail_start: true; refusing to start like a fatal configuration error (exit 78)", cfgPath)
		return exitConfig
	}
	g.api = resolveAPIServer(doc, inv.env, inv.profile)

	// start_gateway: an instance that is already running is replaced
	// (--replace) or refused.
	if pid := runningPID(home); pid != 0 && pid != os.Getpid() {
		if !f.replace {
			// Wording from gateway/run.py start_gateway as a fork stores it
			// (not verified at the pin); the exit code, 1, is run_gateway's.
			g.log.log(levelError, "gateway.run", "Another gateway instance is already running (PID %d, HERMES_HOME=%s). Use 'hermes gateway restart' to replace it, or 'hermes gateway stop' first.", pid, home)
			s.outf("\n❌ Gateway already running (PID %d).\n   Use 'hermes gateway restart' to replace it,\n   or 'hermes gateway stop' to kill it first.\n   Or use 'hermes gateway run --replace' to auto-replace.\n\n", pid)
			return exitFailure
		}
		if code := g.replace(pid); code != 0 {
			return code
		}
	}
	// get_running_pid() cleans up a pid/lock pair nobody holds; then the
	// runtime lock and the exclusive pid file make this the one gateway.
	cleanupStale(home)
	lock, err := acquireLock(home, g.rec)
	if err != nil {
		g.log.log(levelError, "gateway.run", "Gateway runtime lock is already held by another instance. Exiting.")
		return exitFailure
	}
	defer lock.release()
	if err := writePidFile(home, g.rec); err != nil {
		lock.release()
		g.log.log(levelError, "gateway.run", "PID file race lost to another gateway instance. Exiting.")
		return exitFailure
	}
	g.status(map[string]any{"gateway_state": "starting", "exit_reason": nil, "restart_requested": false, "active_agents": 0})
	g.startAPIServer()
	g.status(map[string]any{"gateway_state": "running"})

	for {
		select {
		case sig := <-sigs:
			return g.stop(sig)
		case req := <-g.crash:
			return g.crashNow(req)
		}
	}
}

func (g *gateway) status(set map[string]any) {
	if err := writeRuntimeStatus(g.inv.home, g.rec, set); err != nil {
		g.log.log(levelWarning, "gateway.status", "Could not write %s: %v", runtimeStatusFile, err)
	}
}

// replace mirrors start_gateway's --replace branch: a takeover marker naming
// the old process, SIGTERM, up to 10 s, SIGKILL, then its pid file and the
// marker are removed.
func (g *gateway) replace(pid int) int {
	home := g.inv.home
	g.log.log(levelInfo, "gateway.run", "Replacing existing gateway instance (PID %d) with --replace.", pid)
	if err := writeTakeoverMarker(home, pid, processStartTime(pid)); err != nil {
		g.log.log(levelDebug, "gateway.run", "Could not write takeover marker: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		g.log.log(levelError, "gateway.run", "Permission denied killing PID %d. Cannot replace.", pid)
		clearTakeoverMarker(home)
		return exitFailure
	}
	if !waitGone(pid, 10*time.Second) {
		g.log.log(levelWarning, "gateway.run", "Old gateway (PID %d) did not exit after SIGTERM, sending SIGKILL.", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid, 500*time.Millisecond)
	}
	_ = os.Remove(filepath.Join(home, pidFileName))
	clearTakeoverMarker(home)
	return 0
}

// startAPIServer mirrors the api_server platform coming up
// (APIServerAdapter.connect, gateway/platforms/api_server.py@002b7c34 and
// the startup guard near the pin): no platform, a refused key, or a port it
// cannot bind are logged and the gateway keeps running. A bind failure is
// retried like the reconnect watcher does (gateway/run.py
// _platform_reconnect_watcher; its schedule is not mirrored: the stand-in
// retries after 1 s, doubling up to 30 s).
func (g *gateway) startAPIServer() {
	a := g.api
	if !a.enabled {
		g.log.log(levelWarning, "gateway.run", "No messaging platforms enabled.")
		return
	}
	if a.refused() {
		g.log.log(levelError, "gateway.platforms.api_server", "[Api_Server] Refusing to start: API_SERVER_KEY is required for the API server, including loopback-only binds on %s.", a.host)
		g.log.log(levelWarning, "gateway.run", "✗ api_server failed to connect")
		g.status(map[string]any{"platform.api_server": map[string]any{"state": "retrying", "error_message": "API_SERVER_KEY is required"}})
		return
	}
	if g.listen() {
		return
	}
	go func() {
		for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
			time.Sleep(delay)
			g.log.log(levelInfo, "gateway.run", "Reconnecting api_server...")
			if g.listen() {
				return
			}
		}
	}()
}

// listen binds and serves the API server; false (logged) when it cannot.
func (g *gateway) listen() bool {
	a := g.api
	ln, err := net.Listen("tcp", net.JoinHostPort(a.host, strconv.Itoa(a.port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			g.log.log(levelError, "gateway.platforms.api_server", "[Api_Server] Port %d already in use. Set a different port in config.yaml: platforms.api_server.port", a.port)
		} else {
			g.log.log(levelError, "gateway.platforms.api_server", "[Api_Server] Failed to start API server: %v", err)
		}
		g.log.log(levelWarning, "gateway.run", "✗ api_server failed to connect")
		g.status(map[string]any{"platform.api_server": map[string]any{"state": "retrying", "error_message": err.Error()}})
		return false
	}
	srv := &http.Server{Handler: g.handler(), ReadHeaderTimeout: 10 * time.Second}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.log(levelError, "gateway.platforms.api_server", "[Api_Server] API server failed: %v", err)
		}
	}()
	g.log.log(levelInfo, "gateway.platforms.api_server", "[Api_Server] API server listening on http://%s:%d (model: %s)", a.host, a.port, a.model)
	g.status(map[string]any{"platform.api_server": map[string]any{"state": "connected", "error_message": nil}})
	return true
}

// stop is the signal path of gateway/run.py start_gateway
// (shutdown_signal_handler, restart_signal_handler) and
// _exit_after_graceful_shutdown: SIGUSR1 exits 75; SIGINT, or SIGTERM with a
// takeover or planned-stop marker naming this process, exits 0; any other
// SIGTERM exits 1 so a supervisor revives the gateway. The pid file is
// removed and the lock released.
func (g *gateway) stop(sig os.Signal) int {
	name := signalName(sig)
	code := exitOK
	set := map[string]any{"gateway_state": "stopped"}
	switch {
	case sig == syscall.SIGUSR1:
		g.log.log(levelInfo, "gateway.run", "Received SIGUSR1 — restart requested (exit %d for the service manager)", exitRestart)
		code = exitRestart
		set["restart_requested"] = true
	default:
		home := g.inv.home
		takeover := consumeMarker(filepath.Join(canonicalHome(home), takeoverMarkerFile), home, time.Now())
		planned := sig == syscall.SIGINT
		if !takeover && !planned {
			planned = consumeMarker(filepath.Join(home, plannedStopMarkerFile), home, time.Now())
		}
		switch {
		case takeover:
			g.log.log(levelInfo, "gateway.run", "Received %s as a planned --replace takeover — exiting cleanly", name)
		case planned:
			g.log.log(levelInfo, "gateway.run", "Received %s as a planned gateway stop — exiting cleanly", name)
		default:
			g.log.log(levelInfo, "gateway.run", "Received %s — initiating shutdown", name)
			code = exitFailure
		}
	}
	if d := g.hooks.stopDelay; d > 0 {
		g.s.hook("standin.stop_delay_ms: %s received, waiting %dms before stopping", name, d.Milliseconds())
		time.Sleep(d)
		g.s.hook("standin.stop_delay_ms: waited %dms", d.Milliseconds())
	}
	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		_ = srv.Shutdown(ctx)
		cancel()
		g.log.log(levelInfo, "gateway.platforms.api_server", "[Api_Server] API server stopped")
	}
	g.status(set)
	if code == exitFailure {
		g.log.log(levelInfo, "gateway.run", "Exiting with code 1 (signal-initiated shutdown without restart request) so systemd Restart=on-failure can revive the gateway.")
	}
	removeOwnPidFile(g.inv.home)
	return code
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	}
	return sig.String()
}

// crashNow is the stand-in hook POST /debug/crash: no graceful shutdown, the
// pid file is left behind (the kernel drops the lock).
func (g *gateway) crashNow(req crashRequest) int {
	if req.kill {
		g.s.hook("POST /debug/crash?signal=KILL: sending SIGKILL to self")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
	g.s.hook("POST /debug/crash: exiting with code %d", exitCrash)
	return exitCrash
}

func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	// APIServerAdapter._handle_health: no authentication.
	health := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Status   string `json:"status"`
			Platform string `json:"platform"`
		}{"ok", "hermes-agent"})
	}
	mux.HandleFunc("GET /health", health)
	mux.HandleFunc("GET /v1/health", health)
	mux.HandleFunc("GET /health/detailed", g.handleHealthDetailed)
	mux.HandleFunc("POST /debug/crash", g.handleCrash) // stand-in hook
	return mux
}

// handleHealthDetailed is APIServerAdapter._handle_health_detailed: the
// runtime status file plus this process's pid, no authentication.
func (g *gateway) handleHealthDetailed(w http.ResponseWriter, _ *http.Request) {
	rt := readRuntimeStatus(g.inv.home)
	if rt == nil {
		rt = map[string]any{}
	}
	platforms, ok := rt["platforms"]
	if !ok {
		platforms = map[string]any{}
	}
	agents, ok := rt["active_agents"]
	if !ok {
		agents = 0
	}
	writeJSON(w, http.StatusOK, struct {
		Status       string `json:"status"`
		Platform     string `json:"platform"`
		GatewayState any    `json:"gateway_state"`
		Platforms    any    `json:"platforms"`
		ActiveAgents any    `json:"active_agents"`
		ExitReason   any    `json:"exit_reason"`
		UpdatedAt    any    `json:"updated_at"`
		PID          int    `json:"pid"`
	}{"ok", "hermes-agent", rt["gateway_state"], platforms, agents, rt["exit_reason"], rt["updated_at"], os.Getpid()})
}

// handleCrash answers 202, flushes the answer and only then asks the main
// loop to crash, so the client always sees it.
func (g *gateway) handleCrash(w http.ResponseWriter, r *http.Request) {
	var req crashRequest
	switch sig := r.URL.Query().Get("signal"); sig {
	case "":
	case "KILL", "SIGKILL":
		req.kill = true
	default:
		http.Error(w, fmt.Sprintf("unsupported signal %q: only KILL is supported", sig), http.StatusBadRequest)
		return
	}
	w.Header().Set("Connection", "close")
	body := map[string]any{"status": "crashing", "pid": os.Getpid(), "standin_hook": true}
	if req.kill {
		body["signal"] = "SIGKILL"
	} else {
		body["exit_code"] = exitCrash
	}
	writeJSON(w, http.StatusAccepted, body)
	_ = http.NewResponseController(w).Flush()
	select {
	case g.crash <- req:
	default: // a crash is already under way
	}
}

// writeJSON sends v with an explicit Content-Length, so that a flushed
// answer is complete even if the process ends right after.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
