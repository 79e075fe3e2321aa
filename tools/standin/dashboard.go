package standin

import (
	"context"
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
	"syscall"
	"time"
)

const dashboardPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Hermes dashboard (stand-in)</title></head>
<body>
<h1>Hermes dashboard (stand-in)</h1>
<p>This page is served by hermes-agent-standin, a test double for the Hermes agent. It does no agent work.</p>
</body>
</html>
`

// loopbackHosts is hermes_cli/web_server.py _LOOPBACK_HOST_VALUES: exact
// strings, so 127.0.0.2 counts as public there and here.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

type dashboardOptions struct {
	host string
	port int
}

const dashboardUsage = "usage: " + Program + " dashboard [-h] [--host HOST] [--port PORT] [--no-open] [--insecure] [--skip-build] [--isolated]\n"

// parseDashboardArgs takes the flags of hermes_cli/subcommands/dashboard.py
// (stored at 0a88e1a4): --host (127.0.0.1), --port (9119; 0 picks one),
// --no-open, and --insecure (a no-op), --skip-build, --isolated, --tui
// (accepted, nothing to do for the stand-in).
func parseDashboardArgs(args []string) (opts dashboardOptions, help bool, err error) {
	opts = dashboardOptions{host: "127.0.0.1", port: 9119}
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("argument %s: expected one argument", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "-h" || a == "--help":
			return opts, true, nil
		case a == "--no-open" || a == "--insecure" || a == "--skip-build" || a == "--isolated" || a == "--tui":
		case a == "--host":
			if opts.host, err = value(); err != nil {
				return opts, false, err
			}
		case len(a) > 7 && a[:7] == "--host=":
			opts.host = a[7:]
		case a == "--port" || len(a) > 7 && a[:7] == "--port=":
			v := ""
			if a == "--port" {
				if v, err = value(); err != nil {
					return opts, false, err
				}
			} else {
				v = a[7:]
			}
			n, convErr := strconv.Atoi(v)
			if convErr != nil || n < 0 || n > 65535 {
				return opts, false, fmt.Errorf("argument --port: invalid int value: %q", v)
			}
			opts.port = n
		default:
			return opts, false, fmt.Errorf("unrecognized arguments: %s", a)
		}
	}
	return opts, false, nil
}

// dashboardAuthProvider reports whether an auth provider would register:
// the bundled password provider (HERMES_DASHBOARD_BASIC_AUTH_USERNAME with
// _PASSWORD or _PASSWORD_HASH, or config.yaml dashboard.basic_auth.username
// with password or password_hash), OAuth (HERMES_DASHBOARD_OAUTH_CLIENT_ID)
// or OIDC (HERMES_DASHBOARD_OIDC_ISSUER + HERMES_DASHBOARD_OIDC_CLIENT_ID),
// as the pinned web-dashboard.md and docker.md describe them.
func dashboardAuthProvider(env *environ, doc map[string]any) bool {
	if env.get("HERMES_DASHBOARD_BASIC_AUTH_USERNAME") != "" &&
		(env.get("HERMES_DASHBOARD_BASIC_AUTH_PASSWORD") != "" || env.get("HERMES_DASHBOARD_BASIC_AUTH_PASSWORD_HASH") != "") {
		return true
	}
	if env.get("HERMES_DASHBOARD_OAUTH_CLIENT_ID") != "" {
		return true
	}
	if env.get("HERMES_DASHBOARD_OIDC_ISSUER") != "" && env.get("HERMES_DASHBOARD_OIDC_CLIENT_ID") != "" {
		return true
	}
	if ba, ok := lookupMap(doc, "dashboard", "basic_auth"); ok {
		return !isEmptyYAML(ba["username"]) && (!isEmptyYAML(ba["password"]) || !isEmptyYAML(ba["password_hash"]))
	}
	return false
}

// dashboard is `hermes dashboard` (hermes_cli/web_server.py start_server,
// read at a nearby commit). It serves a placeholder page.
func (s *System) dashboard(inv invocation, args []string) int {
	opts, help, err := parseDashboardArgs(args)
	if help {
		s.outf("%s", dashboardUsage)
		return exitOK
	}
	if err != nil {
		s.errf("%s%s dashboard: error: %v\n", dashboardUsage, Program, err)
		return exitUsage
	}
	doc, _, _ := loadYAML(filepath.Join(inv.home, "config.yaml"))
	if doc == nil {
		doc = map[string]any{}
	}
	// The auth gate engages on every non-loopback bind and fails closed
	// without a provider. The exit code is in doubt: web_server.py raises
	// SystemExit(message), exit 1, in the versions read (0.20.x); issue
	// #49567 asked for 78 and the dashboard s6 scripts stored near the pin
	// (docker/s6-rc.d/dashboard/run@38cd4588, finish@533b3a6e) expect 78 ("a
	// providerless non-loopback bind is refused at startup (exit 78 → finish
	// parks the slot)"). The stand-in exits 78.
	if !slices.Contains(loopbackHosts, opts.host) && !dashboardAuthProvider(inv.env, doc) {
		s.errf("Refusing to bind dashboard to %s — the auth gate engages on non-loopback binds (%s), but no auth providers are registered.\n\n", opts.host, opts.host)
		s.errf("Configure an auth provider before exposing the dashboard (stand-in: HERMES_DASHBOARD_BASIC_AUTH_USERNAME with _PASSWORD or _PASSWORD_HASH, HERMES_DASHBOARD_OAUTH_CLIENT_ID, HERMES_DASHBOARD_OIDC_ISSUER with HERMES_DASHBOARD_OIDC_CLIENT_ID, or dashboard.basic_auth in config.yaml), or bind 127.0.0.1.\n")
		return exitConfig
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ln, err := net.Listen("tcp", net.JoinHostPort(opts.host, strconv.Itoa(opts.port)))
	if err != nil {
		// #93608: a busy explicit port is BACKEND_PORT_IN_USE, exit 75
		// (pinned cli-commands.md, `hermes serve`).
		if errors.Is(err, syscall.EADDRINUSE) {
			s.outf("BACKEND_PORT_IN_USE port=%d\n", opts.port)
			return exitRestart
		}
		s.errf("ERROR: %v\n", err)
		return exitFailure
	}
	srv := &http.Server{Handler: dashboardHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.outf("HERMES_DASHBOARD_READY port=%d\n", ln.Addr().(*net.TCPAddr).Port)
	select {
	case <-sigs:
	case err := <-served:
		s.errf("ERROR: %v\n", err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return exitOK
}

func dashboardHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, dashboardPage)
	})
	return mux
}
