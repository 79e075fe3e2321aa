// Package commands wires each name of the hermes-s6 multi-call binary to the
// package that implements it, with the real system around it.
package commands

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
	"github.com/hermes-agent/hermes-s6/tools/entrypoint"
	"github.com/hermes-agent/hermes-s6/tools/front"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/reconcile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/setup"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
	"github.com/hermes-agent/hermes-s6/tools/slotexec"
	"github.com/hermes-agent/hermes-s6/tools/stage"
	"github.com/hermes-agent/hermes-s6/tools/watch"
	"golang.org/x/sys/unix"
)

var table = map[string]func([]string) int{
	"hermes":            func(a []string) int { return front.New().Main(a) },
	"hermes-entrypoint": entrypoint.Main,
	"render-run":        renderRun,
	"hermes-setup":      runSetup,
	"hermes-reconcile":  runReconcile,
	"hermes-watch":      runWatch,
	"hermes-slots-down": slotsDown,
	"init":              runInit,
	"rc.init":           runStage2,
	"stage3":            func([]string) int { return stage.Stage3(stage.DefaultPaths) },
	"probe":             probe,
	"hermes-init":       bootInit,
	"admin-serve":       adminServe,
	"slot-admin":        slotAdmin,
	"slot-log":          func(a []string) int { return slotexec.System().LogMain(a) },
}

func init() {
	// In the table through init: slot-exec looks commands up in it.
	table["slot-exec"] = func(a []string) int {
		p := slotexec.System()
		p.InProcess = inProcess
		return p.ExecMain(a)
	}
}

// inProcess returns how to run argv in this process when path is this
// binary (under any of its names) and argv names one of its commands; nil
// otherwise.
func inProcess(path string, argv []string) func() int {
	self, err := os.Executable()
	if err != nil {
		return nil
	}
	a, errA := filepath.EvalSymlinks(path)
	b, errB := filepath.EvalSymlinks(self)
	if errA != nil || errB != nil || a != b {
		return nil
	}
	name, args := filepath.Base(argv[0]), argv[1:]
	if name == "hermes-s6" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	f, ok := table[name]
	if !ok || name == "slot-exec" {
		return nil
	}
	return func() int { return f(args) }
}

// probe is the readiness check of a gateway slot, run once per start by
// s6-notifyoncheck: it polls the profile's gateway itself (front.Probe), cheaply and in
// one process (a probe process per poll would swamp a container starting
// many gateways), and exits 0 once it answers, or 1 after probeWindow so
// s6-notifyoncheck can try again. It polls every 10 ms at first (an agent
// that starts quickly is seen at once), then backs off to every 250 ms: each
// poll costs about a millisecond of CPU here, and fifty agents starting
// together compete for that CPU for seconds.
func probe(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: hermes-s6 probe PROFILE")
		return 2
	}
	home := profile.Home(os.Getenv)
	deadline := time.Now().Add(probeWindow)
	for wait := 10 * time.Millisecond; ; wait = min(wait*3/2, 250*time.Millisecond) {
		err := front.Probe(home, args[0], os.Getenv, 500*time.Millisecond)
		if err == nil {
			return 0
		}
		if time.Now().After(deadline) {
			return 1
		}
		time.Sleep(wait) // polling interval
	}
}

var probeWindow = 10 * time.Second

// Names lists the command names.
func Names() string {
	var n []string
	for k := range table {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

// Run runs command name with args and returns the exit code.
func Run(name string, args []string) int {
	f, ok := table[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "hermes-s6: unknown command %q (known: %s)\n", name, Names())
		return 2
	}
	return f(args)
}

func hermesAccount() (uid, gid int, ok bool) {
	u, err := user.Lookup(front.User)
	if err != nil {
		return -1, -1, false
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, true
}

// manager is the scan directory's manager. As root, the slots it registers
// give the hermes group control (status and control fifo); a container run
// as --user has no root, and its slots are its user's already.
func manager() *s6.Manager {
	m := s6.New(s6.DefaultScanDir)
	if _, gid, ok := hermesAccount(); ok && os.Geteuid() == 0 {
		m.Group = gid
	}
	return m
}

// renderRun renders the build-time slots into an s6-rc.d directory.
func renderRun(args []string) int {
	fs := flag.NewFlagSet("render-run", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write each slot's service directory into (DIR/SLOT, s6 scandir layout)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: render-run -out DIR SLOT...   (SLOT: gateway-PROFILE or dashboard)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	for _, name := range fs.Args() {
		var slot render.Slot
		if name == "dashboard" {
			slot = render.DashboardSlot()
		} else if p, ok := profile.FromSlot(name); ok {
			slot = render.GatewaySlot(p)
		} else {
			fmt.Fprintf(os.Stderr, "render-run: unknown slot %q: use gateway-PROFILE or dashboard\n", name)
			return 2
		}
		if err := render.Write(filepath.Join(*out, name), slot); err != nil {
			fmt.Fprintln(os.Stderr, "render-run:", err)
			return 1
		}
	}
	return 0
}

// useContainerEnv makes the process environment the container's, as
// with-contenv would, for the cont-init and cont-finish steps (s6 runs them
// with a scrubbed environment): one process instead of with-contenv's four.
func useContainerEnv() { contenv.Apply(contenv.Environ(os.Environ(), contenv.Dir)) }

func runSetup([]string) int {
	useContainerEnv()
	return setupMain()
}

// setupMain is the setup step in the process environment.
func setupMain() int {
	log := os.Stderr
	wantUID, wantGID := setup.WantedIDs(os.Getenv, log)
	if euid := os.Geteuid(); euid != 0 && (wantUID >= 0 || wantGID >= 0) {
		// Run as --user (Kubernetes runAsUser): no root to rewrite
		// /etc/passwd with, and the processes already have their ids.
		fmt.Fprintf(log, "hermes-setup: HERMES_UID/PUID and HERMES_GID/PGID need root to remap the hermes user; the container runs as uid %d, gid %d: carrying on as that (set the ids with --user or runAsUser/runAsGroup instead)\n", euid, os.Getegid())
		wantUID, wantGID = -1, -1
	}
	acc, err := setup.Remap("/etc/passwd", "/etc/group", front.User, wantUID, wantGID)
	if err != nil {
		fmt.Fprintln(log, "hermes-setup: uid/gid remap:", err)
		uid, gid, ok := hermesAccount()
		if !ok {
			return 1
		}
		acc = setup.Account{Name: front.User, UID: uid, GID: gid}
	} else if wantUID >= 0 || wantGID >= 0 {
		fmt.Fprintf(log, "hermes-setup: hermes is uid %d, gid %d\n", acc.UID, acc.GID)
	}
	// /run and the scan directory are root's alone (s6 executes what is
	// there as root): never writable by hermes, whatever /run was mounted as.
	if err := setup.RootOnly(os.Geteuid(), "/run", s6.DefaultScanDir); err != nil {
		fmt.Fprintln(log, "hermes-setup: /run:", err)
	}
	if err := os.MkdirAll("/run/hermes", 0o755); err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
	}
	home := profile.Home(os.Getenv)
	if os.Geteuid() != 0 {
		if err := setup.MakeTree(home); err != nil {
			fmt.Fprintln(log, "hermes-setup:", err)
			return 1
		}
		return 0
	}
	changed, err := setup.PrepareHome(home, acc)
	if err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
		return 1
	}
	if len(changed) > 0 {
		fmt.Fprintf(log, "hermes-setup: gave %d path(s) under %s to hermes\n", len(changed), home)
	}
	return 0
}

func runReconcile([]string) int {
	useContainerEnv()
	uid, gid, _ := hermesAccount()
	r := &reconcile.Reconciler{
		Home:   profile.Home(os.Getenv),
		S6:     manager(),
		Getenv: os.Getenv,
		CMD:    reconcile.FindCMD("/proc"),
		UID:    uid,
		GID:    gid,
		Log:    os.Stderr,
		Alive:  reconcile.GatewayAlive,
	}
	if os.Geteuid() != 0 {
		r.UID, r.GID = -1, -1
	}
	r.Run()
	return 0
}

func runWatch([]string) int {
	w := &watch.Watcher{S6: manager(), Out: os.Stdout, History: front.HistoryFile, Interval: 100 * time.Millisecond, Idle: 5 * time.Second, Markers: os.Geteuid() == 0}
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; close(stop) }()
	w.Run(stop)
	return 0
}

// slotsDown brings every slot down at once and waits, bounded, so that a
// slow gateway can flush while a quick one does not hold up the stop.
func slotsDown([]string) int {
	useContainerEnv()
	m := manager()
	slots, err := m.Slots()
	if err != nil {
		return 0
	}
	ms := 4000
	if n, err := strconv.Atoi(os.Getenv("HERMES_STOP_TIMEOUT_MS")); err == nil && n >= 0 {
		ms = n
	}
	m.Timeout = time.Duration(ms) * time.Millisecond
	// Only the slots themselves: their loggers and the watcher stay up so
	// the slots' last words are logged.
	var targets []string
	for _, s := range slots {
		targets = append(targets, s.Name)
	}
	done := make(chan struct{}, len(targets))
	for _, s := range targets {
		go func() { m.Stop(s, true); done <- struct{}{} }()
	}
	for range targets {
		<-done
	}
	return 0
}

func runInit(args []string) int { return stage.InitMain(stage.DefaultPaths, args) }

func runStage2(args []string) int {
	if len(args) > 0 && args[0] == "top" {
		args = args[1:]
	}
	err := stage.Stage2(stage.DefaultPaths, args)
	fmt.Fprintln(os.Stderr, "s6-stage: rc.init:", err)
	return 111
}

// bootInit is the image's ENTRYPOINT. As PID 1 it becomes s6-overlay's
// /init (or the debian stage layer's). Anywhere else (`docker run --init`,
// Fly Machines, some Kubernetes setups) s6 cannot be PID 1 and s6-overlay
// refuses to start: then it says so in one line, runs the setup step and runs
// the CMD in the foreground, without supervision, as the CMD wrapper would
// (`gateway run` is the gateway itself; its exit code is the container's).
// The container environment is this process's: nothing was dumped.
func bootInit(args []string) int {
	if os.Getpid() == 1 {
		err := syscall.Exec(initPath, append([]string{initPath}, args...), os.Environ())
		fmt.Fprintf(os.Stderr, "hermes-init: cannot run %s: %v\n", initPath, err)
		return 111
	}
	pid1 := "unknown"
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		pid1 = strings.TrimSpace(string(b))
	}
	fmt.Fprintf(os.Stderr, "hermes-init: warning: not PID 1 (PID 1 is %s, e.g. docker run --init): s6 supervision is off; running the command in the foreground, no restart on crash\n", pid1)
	if os.Geteuid() == 0 {
		if code := setupMain(); code != 0 {
			return code
		}
	}
	return entrypoint.MainWithEnv(args, os.Environ())
}

// initPath is s6-overlay's stage 1 (the stage layer's with S6_SOURCE=debian).
const initPath = "/init"

// adminServe is the run program of the hermes-admin service (root): it
// prepares the socket directory and its access rules for the hermes group,
// then becomes s6's super-server, which runs `slot-admin` for each request.
func adminServe([]string) int {
	if os.Geteuid() != 0 {
		// Run as --user: no root, and the scan directory is this user's,
		// so the front registers slots itself. Ready, and idle.
		fmt.Fprintf(os.Stderr, "hermes-admin: not root (uid %d): every process runs as this user, nothing to serve\n", os.Geteuid())
		unix.Write(3, []byte("\n"))
		unix.Close(3)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return 0
	}
	a, err := account.Lookup(front.User)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hermes-admin: the hermes account:", err)
		return 111
	}
	if err := slotadmin.Prepare(slotadmin.Dir, a.GID); err != nil {
		fmt.Fprintln(os.Stderr, "hermes-admin:", err)
		return 111
	}
	// s6-ipcserver -1 announces readiness on its stdout: make that the
	// service's notification fd (3) when s6 gave one.
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
		if err := unix.Dup3(3, 1, 0); err != nil {
			fmt.Fprintln(os.Stderr, "hermes-admin: notification fd:", err)
			return 111
		}
		unix.Close(3)
	}
	argv := slotadmin.ServerArgv(render.DefaultTool, slotadmin.Dir)
	path, err := slotexec.LookPath(argv[0], os.Getenv("PATH"))
	if err == nil {
		err = syscall.Exec(path, argv, os.Environ())
	}
	fmt.Fprintf(os.Stderr, "hermes-admin: cannot run %s: %v\n", argv[0], err)
	return 111
}

// slotAdmin handles one request to the admin service (run by s6-sudod as
// root, with the client's stdout and stderr): `register PROFILE` or
// `unregister PROFILE`.
func slotAdmin(args []string) int {
	caller := "root"
	if uid := os.Getenv("IPCREMOTEEUID"); uid != "" {
		caller = "uid " + uid
	}
	useContainerEnv()
	home := profile.Home(os.Getenv)
	if err := profile.CheckHome(home); err != nil {
		fmt.Fprintln(os.Stderr, "hermes-admin:", err)
		return 1
	}
	return slotadmin.Serve(slotadmin.Local{S6: manager(), Home: home}, args, os.Stderr, caller)
}
