// Package commands is the table of the hermes-s6 multi-call binary: each
// name wired to the package that implements it, with the real system
// around it. The adapters here only gather the process's surroundings
// (environment, ids, paths) and call in; no behaviour lives here.
package commands

import (
	"fmt"
	"os"
	"os/signal"
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
)

// Command is one name of the multi-call binary.
type Command struct {
	Name string
	// Link: the image installs the binary under this name in BinDir
	// (`hermes-s6 links`); the others are called as `hermes-s6 NAME` (or, for
	// init, linked by the stage layer as /init).
	Link bool
	// What it is, one line (the README's layout table lists the names).
	What string
	Run  func(args []string) int
}

// BinDir is where the image installs the binary and its links.
const BinDir = "/usr/local/bin"

// Table lists every command.
func Table() []Command {
	return []Command{
		{"hermes", true, "the in-container front: gateway and profile verbs, the redirect, healthcheck", func(a []string) int { return front.New().Main(a) }},
		{"hermes-init", true, "the ENTRYPOINT: /init as PID 1, the foreground fallback otherwise", bootInit},
		{"hermes-entrypoint", true, "the CMD wrapper (S6_CMD_ARG0)", entrypoint.Main},
		{"render-run", true, "renders service directories (image build time)", func(a []string) int { return render.Command(a, os.Stderr) }},
		{"hermes-setup", true, "cont-init: uid/gid remap, $HERMES_HOME tree, permissions", runSetup},
		{"hermes-reconcile", true, "cont-init: restores every slot's desired state", runReconcile},
		{"hermes-watch", true, "the main-hermes service: logs every slot state change", runWatch},
		{"hermes-slots-down", true, "cont-finish: brings every slot down, bounded", slotsDown},
		{"init", false, "the debian stage layer's stage 1 (/init)", func(a []string) int { return stage.InitMain(stage.DefaultPaths, a) }},
		{"rc.init", false, "the debian stage layer's stage 2", func(a []string) int { return stage.Stage2Main(stage.DefaultPaths, a) }},
		{"stage3", false, "the debian stage layer's stage 3", func([]string) int { return stage.Stage3(stage.DefaultPaths, stage.AllOthers{}) }},
		{"probe", false, "a gateway slot's readiness check", probe},
		{"slot-exec", false, "what a run script execs: container environment, recursion guard, user drop", slotExec},
		{"slot-log", false, "a slot's logger", func(a []string) int { return slotexec.System().LogMain(a) }},
		{"admin-serve", false, "the hermes-admin service (root): s6-ipcserver for slot registration", adminServe},
		{"slot-admin", false, "one request to hermes-admin: register or unregister PROFILE", slotAdmin},
		{"links", false, "installs the binary's links: links DIR", links},
	}
}

func lookup(name string) (Command, bool) {
	for _, c := range Table() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Names lists the command names, sorted.
func Names() string {
	var n []string
	for _, c := range Table() {
		n = append(n, c.Name)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

// Run runs command name with args and returns the exit code.
func Run(name string, args []string) int {
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "hermes-s6: unknown command %q (known: %s)\n", name, Names())
		return 2
	}
	return c.Run(args)
}

// links makes DIR/NAME -> hermes-s6 for every linked command (the image
// build runs it, so the Dockerfile does not repeat the names).
func links(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: hermes-s6 links DIR")
		return 2
	}
	for _, c := range Table() {
		if !c.Link {
			continue
		}
		if err := os.Symlink("hermes-s6", filepath.Join(args[0], c.Name)); err != nil {
			fmt.Fprintln(os.Stderr, "hermes-s6 links:", err)
			return 1
		}
	}
	return 0
}

func slotExec(a []string) int {
	p := slotexec.System()
	p.InProcess = inProcess
	return p.ExecMain(a)
}

// inProcess returns how to run argv in this process when path is this
// binary (under any of its names) and argv names one of its commands other
// than slot-exec; nil otherwise.
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
	c, ok := lookup(name)
	if !ok || name == "slot-exec" {
		return nil
	}
	return func() int { return c.Run(args) }
}

func probe(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: hermes-s6 probe PROFILE")
		return 2
	}
	if front.WaitServing(profile.Home(os.Getenv), args[0], os.Getenv, probeWindow) != nil {
		return 1
	}
	return 0
}

// probeWindow is how long one probe polls before s6-notifyoncheck retries.
var probeWindow = 10 * time.Second

// hermes is the hermes account, when there is one.
func hermes() (account.Account, bool) {
	a, err := account.Lookup(account.Hermes)
	return a, err == nil
}

// manager is the scan directory's manager. As root, the slots it registers
// give the hermes group control (status and control fifo); a container run
// as --user has no root, and its slots are its user's already.
func manager() *s6.Manager {
	m := s6.New(s6.DefaultScanDir)
	if a, ok := hermes(); ok && os.Geteuid() == 0 {
		m.Group = a.GID
	}
	return m
}

// useContainerEnv makes the process environment the container's, as
// with-contenv would, for the cont-init and cont-finish steps (s6 runs them
// with a scrubbed environment): one process instead of with-contenv's four.
func useContainerEnv() { contenv.Apply(contenv.Environ(os.Environ(), contenv.Dir)) }

func setupStep() int {
	return setup.Container(setup.DefaultPaths(os.Getenv, s6.DefaultScanDir), os.Geteuid(), os.Getegid(), os.Getenv, os.Stderr)
}

func runSetup([]string) int {
	useContainerEnv()
	return setupStep()
}

func bootInit(args []string) int { return entrypoint.BootMain(args, setupStep) }

func runReconcile([]string) int {
	useContainerEnv()
	r := &reconcile.Reconciler{
		Home:   profile.Home(os.Getenv),
		S6:     manager(),
		Getenv: os.Getenv,
		CMD:    reconcile.FindCMD("/proc"),
		UID:    -1,
		GID:    -1,
		Log:    os.Stderr,
		Alive:  reconcile.GatewayAlive,
	}
	if a, ok := hermes(); ok && os.Geteuid() == 0 {
		r.UID, r.GID = a.UID, a.GID
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

// slotsDown stops every slot, bounded by HERMES_STOP_TIMEOUT_MS (4000).
func slotsDown([]string) int {
	useContainerEnv()
	m := manager()
	m.Timeout = 4000 * time.Millisecond
	if n, err := strconv.Atoi(os.Getenv("HERMES_STOP_TIMEOUT_MS")); err == nil && n >= 0 {
		m.Timeout = time.Duration(n) * time.Millisecond
	}
	m.StopSlots()
	return 0
}

func adminServe([]string) int {
	s := slotadmin.Server{Dir: slotadmin.Dir, Tool: render.DefaultTool, Euid: os.Geteuid(), Path: os.Getenv("PATH"), Stderr: os.Stderr, NotifyFD: 3}
	if s.Euid == 0 {
		a, ok := hermes()
		if !ok {
			fmt.Fprintln(os.Stderr, "hermes-admin: no hermes account")
			return 111
		}
		s.GID = a.GID
	}
	return s.Run()
}

// slotAdmin handles one request to the admin service (run by s6-sudod as
// root, with the client's stdout and stderr).
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
