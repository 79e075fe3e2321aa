package standin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	"syscall"
	"time"
)

const (
	defaultGatewayHost = "0.0.0.0"
	defaultGatewayPort = 8642
	shutdownTimeout    = 5 * time.Second
)

// crashRequest is sent by POST /debug/crash once its response is flushed.
type crashRequest struct{ kill bool }

type gateway struct {
	profile profile
	pid     int
	port    int
	pidPath string
	log     lineLogger // stdout
	errs    lineLogger // stderr
	crash   chan crashRequest
}

func runGateway(p profile, args []string, stdout, stderr io.Writer) error {
	// Catch signals first: a SIGTERM at any time after exec, even before
	// the start line, must mean a clean stop rather than death by signal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	replace, err := parseGatewayRunArgs(args, stderr)
	if err != nil {
		return err
	}
	g, cfg, err := prepareGateway(p, stdout, stderr)
	if err != nil {
		return prefixed(p, err)
	}
	if replace {
		if err := replacePrevious(g.pidPath, g.log); err != nil {
			return prefixed(p, &exitError{code: exitFailure, err: err})
		}
	}
	addr := net.JoinHostPort(gatewayHost(), strconv.Itoa(g.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return prefixed(p, failf(exitFailure, "cannot listen on %s: %v", addr, err))
	}
	return prefixed(p, g.serve(ln, sigs, cfg.stopDelay))
}

func parseGatewayRunArgs(args []string, stderr io.Writer) (replace bool, err error) {
	fs := flag.NewFlagSet("gateway run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "usage: %s [-p NAME] gateway run [--replace]\n", Program) }
	fs.BoolVar(&replace, "replace", false, "stop the gateway named in gateway.pid first")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, &exitError{code: exitOK}
		}
		return false, &exitError{code: exitUsage}
	}
	if fs.NArg() > 0 {
		return false, failf(exitUsage, "gateway run: unexpected argument %q", fs.Arg(0))
	}
	return replace, nil
}

// prepareGateway does everything that can fail for configuration reasons
// before the gateway touches the network.
func prepareGateway(p profile, stdout, stderr io.Writer) (*gateway, config, error) {
	if err := p.ensureDir(); err != nil {
		return nil, config{}, err
	}
	cfg, err := loadConfig(filepath.Join(p.dir, "config.yaml"))
	if err != nil {
		return nil, config{}, &exitError{code: exitConfig, err: err}
	}
	if cfg.failStart {
		return nil, config{}, failf(exitConfig, "%s sets fail_start: true, refusing to start", filepath.Join(p.dir, "config.yaml"))
	}
	port, err := gatewayPort(cfg)
	if err != nil {
		return nil, config{}, err
	}
	if err := dumpEnvironment(); err != nil {
		return nil, config{}, err
	}
	prefix := fmt.Sprintf("%s: gateway[%s] ", Program, p.name)
	return &gateway{
		profile: p,
		pid:     os.Getpid(),
		port:    port,
		pidPath: filepath.Join(p.dir, pidFileName),
		log:     lineLogger{w: stdout, prefix: prefix},
		errs:    lineLogger{w: stderr, prefix: prefix},
		crash:   make(chan crashRequest, 1),
	}, cfg, nil
}

// prefixed names the gateway in an error that is about to be printed.
func prefixed(p profile, err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		return &exitError{code: ee.code, err: fmt.Errorf("gateway[%s]: %w", p.name, ee.err)}
	}
	return err
}

func gatewayHost() string {
	if host := os.Getenv("API_SERVER_HOST"); host != "" {
		return host
	}
	return defaultGatewayHost
}

// gatewayPort picks config api_server_port, else $API_SERVER_PORT, else 8642.
func gatewayPort(cfg config) (int, error) {
	if cfg.port != 0 {
		return cfg.port, nil
	}
	env := os.Getenv("API_SERVER_PORT")
	if env == "" {
		return defaultGatewayPort, nil
	}
	port, err := parsePort(env)
	if err != nil {
		return 0, failf(exitConfig, "invalid API_SERVER_PORT: %v", err)
	}
	return port, nil
}

// dumpEnvironment writes the sorted environment to $HERMES_STANDIN_ENV_DUMP,
// if set, so tests can check what reached the service.
func dumpEnvironment() error {
	path := os.Getenv("HERMES_STANDIN_ENV_DUMP")
	if path == "" {
		return nil
	}
	env := os.Environ()
	slices.Sort(env)
	if err := writeFileAtomic(path, []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
		return failf(exitFailure, "cannot write HERMES_STANDIN_ENV_DUMP: %v", err)
	}
	return nil
}

// serve runs the HTTP server on ln until a signal, a simulated crash or a
// server failure.
func (g *gateway) serve(ln net.Listener, sigs <-chan os.Signal, stopDelay time.Duration) error {
	srv := &http.Server{Handler: g.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := writePidFile(g.pidPath, g.pid); err != nil {
		srv.Close()
		return failf(exitFailure, "cannot write pid file: %v", err)
	}
	g.log.printf("started pid=%d port=%d", g.pid, g.port)

	select {
	case sig := <-sigs:
		return g.stop(srv, sig, stopDelay)
	case req := <-g.crash:
		return g.crashNow(srv, req)
	case err := <-served:
		_ = removeOwnPidFile(g.pidPath, g.pid)
		return failf(exitFailure, "HTTP server failed: %v", err)
	}
}

// stop is the clean shutdown path: log, wait stopDelay, stop serving, remove
// the pid file, log, exit 0.
func (g *gateway) stop(srv *http.Server, sig os.Signal, stopDelay time.Duration) error {
	g.log.printf("received %s, shutting down", signalName(sig))
	time.Sleep(stopDelay) // simulated flushing of gateway state
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		g.errs.printf("HTTP shutdown: %v", err)
	}
	if err := removeOwnPidFile(g.pidPath, g.pid); err != nil {
		return failf(exitFailure, "cannot remove pid file: %v", err)
	}
	g.log.printf("stopped")
	return nil
}

// crashNow ends the gateway the way a crash would: no graceful shutdown, and
// the pid file is left behind.
func (g *gateway) crashNow(srv *http.Server, req crashRequest) error {
	if req.kill {
		g.errs.printf("simulated crash requested via POST /debug/crash, sending SIGKILL to self")
		_ = syscall.Kill(g.pid, syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
	srv.Close()
	return failf(exitCrash, "simulated crash requested via POST /debug/crash, exiting with code %d", exitCrash)
}

func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", g.handleHealth)
	mux.HandleFunc("POST /debug/crash", g.handleCrash)
	return mux
}

type gatewayHealth struct {
	Status  string `json:"status"`
	PID     int    `json:"pid"`
	Profile string `json:"profile"`
	Port    int    `json:"port"`
}

func (g *gateway) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, gatewayHealth{Status: "ok", PID: g.pid, Profile: g.profile.name, Port: g.port})
}

// handleCrash answers 202, flushes the response to the socket and only then
// asks serve to crash, so the client always sees the answer.
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
	body := map[string]any{"status": "crashing", "pid": g.pid}
	if req.kill {
		body["signal"] = "SIGKILL"
	} else {
		body["exit_code"] = exitCrash
	}
	writeJSON(w, http.StatusAccepted, body)
	if err := http.NewResponseController(w).Flush(); err != nil {
		g.errs.printf("flushing /debug/crash response: %v", err)
	}
	select {
	case g.crash <- req:
	default: // a crash is already under way
	}
}

// writeJSON sends v with an explicit Content-Length, so that a flushed
// response is complete even if the process ends right after.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
