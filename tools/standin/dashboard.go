package standin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const dashboardPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Hermes dashboard (stand-in)</title></head>
<body>
<h1>Hermes dashboard (stand-in)</h1>
<p>This page is served by hermes-agent-standin, a test double for the Hermes agent.</p>
</body>
</html>
`

type dashboardOptions struct {
	host string
	port int
}

func runDashboard(args []string, stdout, stderr io.Writer) error {
	opts, err := parseDashboardArgs(args, stderr)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	addr := net.JoinHostPort(opts.host, strconv.Itoa(opts.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return failf(exitFailure, "dashboard: cannot listen on %s: %v", addr, err)
	}
	pid := os.Getpid()
	srv := &http.Server{Handler: dashboardHandler(pid), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	log := lineLogger{w: stdout, prefix: Program + ": dashboard "}
	log.printf("started pid=%d addr=%s", pid, addr)
	select {
	case sig := <-sigs:
		log.printf("received %s, shutting down", signalName(sig))
	case err := <-served:
		return failf(exitFailure, "dashboard: HTTP server failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: dashboard: HTTP shutdown: %v\n", Program, err)
	}
	log.printf("stopped")
	return nil
}

func parseDashboardArgs(args []string, stderr io.Writer) (dashboardOptions, error) {
	opts := dashboardOptions{}
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s dashboard [--host H] [--port P] [--no-open]\n", Program)
	}
	fs.StringVar(&opts.host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&opts.port, "port", 9119, "port to listen on")
	fs.Bool("no-open", false, "accepted for compatibility; the stand-in never opens a browser")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, &exitError{code: exitOK}
		}
		return opts, &exitError{code: exitUsage}
	}
	if fs.NArg() > 0 {
		return opts, failf(exitUsage, "dashboard: unexpected argument %q", fs.Arg(0))
	}
	if opts.port < 1 || opts.port > 65535 {
		return opts, failf(exitUsage, "dashboard: --port %d is not in 1..65535", opts.port)
	}
	return opts, nil
}

func dashboardHandler(pid int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, dashboardPage)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			PID    int    `json:"pid"`
		}{"ok", pid})
	})
	return mux
}
