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

	"github.com/hermes-agent/hermes-s6/tools/contenv"
	"github.com/hermes-agent/hermes-s6/tools/entrypoint"
	"github.com/hermes-agent/hermes-s6/tools/front"
	"github.com/hermes-agent/hermes-s6/tools/health"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/reconcile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/setup"
	"github.com/hermes-agent/hermes-s6/tools/slotexec"
	"github.com/hermes-agent/hermes-s6/tools/stage"
	"github.com/hermes-agent/hermes-s6/tools/watch"
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
// s6-notifyoncheck: it polls the profile's /health itself, cheaply and in
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
	port := front.GatewayPort(profile.Home(os.Getenv), args[0], os.Getenv)
	deadline := time.Now().Add(probeWindow)
	for wait := 10 * time.Millisecond; ; wait = min(wait*3/2, 250*time.Millisecond) {
		if health.Check(port, 500*time.Millisecond) == nil {
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

func manager() *s6.Manager {
	m := s6.New(s6.DefaultScanDir)
	if _, gid, ok := hermesAccount(); ok {
		m.Group = gid
	}
	return m
}

// renderRun renders the build-time slots into an s6-rc.d directory.
func renderRun(args []string) int {
	fs := flag.NewFlagSet("render-run", flag.ContinueOnError)
	out := fs.String("out", "", "s6-rc.d directory to write into (s6-rc source layout)")
	scandir := fs.Bool("scandir", false, "write s6 scandir layout (log/ subdirectory) into -out/NAME instead")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: render-run -out DIR [-scandir] SLOT...   (SLOT: gateway-PROFILE or dashboard)")
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
		var err error
		if *scandir {
			err = render.Write(*out+"/"+name, slot)
		} else {
			err = render.WriteS6RC(*out, slot)
		}
		if err != nil {
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
	log := os.Stderr
	wantUID, wantGID := setup.WantedIDs(os.Getenv, log)
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
	home := profile.Home(os.Getenv)
	changed, err := setup.PrepareHome(home, acc)
	if err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
	}
	if len(changed) > 0 {
		fmt.Fprintf(log, "hermes-setup: gave %d path(s) under %s to hermes\n", len(changed), home)
	}
	if err := os.MkdirAll("/run/hermes", 0o755); err != nil {
		fmt.Fprintln(log, "hermes-setup:", err)
	}
	m := s6.New(s6.DefaultScanDir)
	if err := setup.GrantScanDir(m, acc.GID); err != nil {
		fmt.Fprintln(log, "hermes-setup: supervise permissions:", err)
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
	w := &watch.Watcher{S6: manager(), Out: os.Stdout, History: front.HistoryFile, Interval: 100 * time.Millisecond}
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
	// Loggers and the watcher stay up so the slots' last words are logged.
	var targets []string
	for _, s := range slots {
		if s == "dashboard" || strings.HasPrefix(s, "gateway-") && !strings.HasSuffix(s, "-log") {
			targets = append(targets, s)
		}
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
