// Package stage is the small s6-overlay-compatible stage layer used with
// Debian's s6 (S6_SOURCE=debian). Wherever this project's code, its harness
// or a person debugging a container looks, it shows what s6-overlay 3.2.3.0
// shows (with s6 v2.15.0.0, s6-rc v0.6.1.0, s6-linux-init v1.2.0.1,
// s6-overlay-helpers v0.1.2.2). Sources are cited below as repo@tag path:
// function; OV is s6-overlay@v3.2.3.0 layout/rootfs-overlay, OVP is
// OV/package/admin/s6-overlay-@VERSION@.
//
// Stage 1 (Init, /init):
//   - Not PID 1: refused before anything is touched, with s6-overlay's words
//     and exit code: "can only run as pid 1", 100
//     (s6-overlay-helpers@v0.1.2.2 src/s6-overlay-suexec/s6-overlay-suexec.c:
//     main, the first program OV/init execs). InitMain prints it as
//     "s6-stage: fatal: can only run as pid 1".
//   - /run: as root, made root:root 0755, so that no unprivileged user (the
//     image ships /run 1777 for --user containers) can create or plant
//     anything in it. OVP/libexec/preinit, run as root through the setuid
//     s6-overlay-suexec, does the same for a /run that is not the container
//     user's ("s6-chown -U -- /run; s6-chmod 0755 /run": owned by the
//     container user, root by default). It leaves the root-owned /run of a
//     root container as it is, though, even 1777 (--tmpfs /run): there this
//     layer is stricter. Not root, /run is left alone. Then what a previous
//     boot left is removed (preinit: "s6-rmrf /run/s6 /run/service
//     /run/uncaught-logs /run/s6-rc*").
//   - Environment: PATH is /init's (OV/init: addpath puts /command, /usr/bin
//     and /bin in front when missing). Unless S6_KEEP_ENV is set, the
//     environment is dumped to /run/s6/container_environment and stage 2 and
//     s6-svscan, hence every service, cont-init.d and the CMD, get PATH alone
//     (OVP/libexec/stage0 passes s6-linux-init-maker "-s
//     /run/s6/container_environment" and "-p $PATH"; s6-linux-init@v1.2.0.1
//     src/init/s6-linux-init.c: main dumps with env_dump4 and execs s6-svscan
//     and stage 2 with PATH plus basedir/env, empty by default). With
//     S6_KEEP_ENV set, nothing is dumped and they all get the whole
//     environment (stage0: "s6-dumpenv -N $basedir/env", which s6-linux-init
//     applies to both); with-contenv is then a no-op. S6_KEEP_ENV counts as
//     set as contenv.Environ counts it.
//   - Services: LayServices lays the s6-rc.d longruns as rc.init's
//     s6-rc-compile and s6-rc-init leave them (see there): /run/s6-rc →
//     s6-rc:s6-rc-init:XXXXXX, /run/service/NAME → /run/s6-rc/servicedirs/NAME,
//     a logger as its own NAME-log entry joined to its producer through
//     s6rc-fdholder, s6rc-oneshot-runner, s6-linux-init-shutdownd as a plain
//     directory, every s6-rc service down.
//   - Starts stage 2 and execs s6-svscan on /run/service.
//
// Stage 2 (Stage2, rc.init top CMD...), as OVP/etc/s6-linux-init/skel/rc.init:
// `s6-rc -u change top` (BootServices: s6rc-oneshot-runner, then base, which
// here is cont-init.d run in order, then the user bundles' closure, each
// longrun after what it needs, with s6-rc's commands, down-file handling and
// messages: s6-rc@v0.6.1.0 src/s6-rc/s6-rc.c: start_longrun,
// success_longrun, failure_longrun, on_success), honouring
// S6_CMD_WAIT_FOR_SERVICES_MAXTIME, S6_BEHAVIOUR_IF_STAGE2_FAILS and
// S6_VERBOSITY; then the CMD, with S6_CMD_ARG0 in front, in the original
// working directory; its exit code becomes the container's.
//
// Stage 3 (.s6-svscan/finish): run /etc/cont-finish.d/*, TERM everything
// left, wait up to S6_KILL_GRACETIME (returning as soon as nothing is left),
// KILL the rest and exit with the recorded code.
//
// Not mirrored: s6-rc oneshots in s6-rc.d are not run (Debian has no
// s6-rc-oneshot-run: s6rc-oneshot-runner refuses every request), nor
// services.d, fix-attrs.d, S6_LOGGING's catch-all logger (s6-svscan-log,
// absent by default: stage0 passes -B), S6_CMD_RECEIVE_SIGNALS, the
// .s6-svscan signal scripts, s6-rc's database and state files (only the
// compiled service directories are written to /run/s6/db), and s6-rc's
// parallel transitions (longruns are started one at a time, in dependency
// order).
package stage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/contenv"
)

// Paths of the stage layer; the same as s6-overlay's where one exists.
type Paths struct {
	Run        string // /run
	ScanDir    string // /run/service
	EnvDir     string // /run/s6/container_environment
	WorkdirF   string // /run/s6/workdir
	ExitCodeF  string // /run/s6-linux-init-container-results/exitcode
	RcInit     string // /run/s6/basedir/scripts/rc.init (stage 2 argv[0])
	DB         string // /run/s6/db: s6-rc-compile's output in rc.init
	LiveDir    string // /run/s6-rc: s6-rc's default live directory
	RcD        string // /etc/s6-overlay/s6-rc.d
	ContInit   string // /etc/cont-init.d
	ContFinish string // /etc/cont-finish.d
	Self       string // this multi-call binary
	BinDir     string // /command
}

// DefaultPaths are the paths in the image.
var DefaultPaths = Paths{
	Run:        "/run",
	ScanDir:    "/run/service",
	EnvDir:     contenv.Dir,
	WorkdirF:   "/run/s6/workdir",
	ExitCodeF:  "/run/s6-linux-init-container-results/exitcode",
	RcInit:     "/run/s6/basedir/scripts/rc.init",
	DB:         "/run/s6/db",
	LiveDir:    "/run/s6-rc",
	RcD:        "/etc/s6-overlay/s6-rc.d",
	ContInit:   "/etc/cont-init.d",
	ContFinish: "/etc/cont-finish.d",
	Self:       "/usr/local/bin/hermes-s6",
	BinDir:     "/command",
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "s6-stage: "+format+"\n", a...)
}

// getpid and geteuid are the process's; tests replace them.
var (
	getpid  = os.Getpid
	geteuid = os.Geteuid
)

// ExitError is a refusal of stage 1, with the exit code /init exits with.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return "fatal: " + e.Msg }

// ErrNotPID1 is s6-overlay's refusal when /init is not PID 1
// (s6-overlay-suexec: strerr_dief1x(100, "can only run as pid 1")).
var ErrNotPID1 = &ExitError{Code: 100, Msg: "can only run as pid 1"}

// InitMain runs stage 1 and returns the exit code of a failed /init; the
// line printed for a refusal reads as s6-overlay-suexec's, with this layer's
// name: "s6-stage: fatal: can only run as pid 1".
func InitMain(p Paths, cmd []string) int {
	err := Init(p, cmd)
	var ee *ExitError
	if errors.As(err, &ee) {
		logf("%v", ee)
		return ee.Code
	}
	logf("init: %v", err)
	return 111
}

// Init is stage 1. It only returns on error; on success it becomes s6-svscan.
func Init(p Paths, cmd []string) error {
	if getpid() != 1 {
		return ErrNotPID1
	}
	if err := secureRun(p.Run); err != nil {
		return fmt.Errorf("stage1: %w", err)
	}
	wd, _ := os.Getwd()
	stale, _ := filepath.Glob(p.LiveDir + "*")
	for _, d := range append(stale, p.ScanDir, filepath.Dir(p.EnvDir), filepath.Dir(p.ExitCodeF), filepath.Dir(p.RcInit), p.DB) {
		// A restarted container keeps /run unless it is a tmpfs: start clean.
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	for _, d := range []string{p.ScanDir, filepath.Dir(p.EnvDir), filepath.Dir(p.ExitCodeF), filepath.Dir(p.RcInit)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("stage1: /run must be writable: %w", err)
		}
	}
	if err := os.WriteFile(p.WorkdirF, []byte(wd), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(p.ExitCodeF, []byte("0"), 0o644); err != nil {
		return err
	}
	env, dump := stageEnv(os.Environ())
	if dump != nil {
		if err := contenv.Dump(p.EnvDir, dump); err != nil {
			return err
		}
	}
	if err := os.Symlink(p.Self, p.RcInit); err != nil {
		return err
	}
	if err := LayServices(p); err != nil {
		return err
	}
	ctl := filepath.Join(p.ScanDir, ".s6-svscan")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		return err
	}
	finish := "#!/bin/sh\nexec " + p.Self + " stage3\n"
	if err := os.WriteFile(filepath.Join(ctl, "finish"), []byte(finish), 0o755); err != nil {
		return err
	}
	stage2 := exec.Command(p.RcInit, append([]string{"top"}, cmd...)...)
	stage2.Args[0] = p.RcInit
	stage2.Env = env
	stage2.Stdin, stage2.Stdout, stage2.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := stage2.Start(); err != nil {
		return fmt.Errorf("stage1: starting stage 2: %w", err)
	}
	svscan := filepath.Join(p.BinDir, "s6-svscan")
	return syscall.Exec(svscan, []string{"s6-svscan", p.ScanDir}, env)
}

// secureRun leaves run root:root 0755 when stage 1 runs as root (creating
// it if missing, as preinit's s6-mkdir -p -m 0755 /run does); otherwise it
// changes nothing.
func secureRun(run string) error {
	if geteuid() != 0 {
		return nil
	}
	st, err := os.Lstat(run)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(run, 0o755); err != nil {
			return err
		}
		return os.Chmod(run, 0o755)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", run)
	}
	if err := os.Lchown(run, 0, 0); err != nil {
		return err
	}
	return os.Chmod(run, 0o755)
}

// keepEnv reports whether S6_KEEP_ENV asks for the whole environment, with
// the same rule as contenv.Environ (set, and neither empty nor 0), so that
// stage 1 and the programs that read the container environment agree.
func keepEnv(environ []string) bool {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "S6_KEEP_ENV="); ok {
			return v != "" && v != "0"
		}
	}
	return false
}

// initPath is PATH as s6-overlay's /init makes it before anything runs
// (s6-overlay@v3.2.3.0 layout/rootfs-overlay/init: addpath): /bin if PATH
// is empty, then /bin, /usr/bin and /command each put in front unless
// already there.
func initPath(path string) string {
	if path == "" {
		path = "/bin"
	}
	for _, x := range []string{"/bin", "/usr/bin", "/command"} {
		if !contains(strings.Split(path, ":"), x) {
			path = x + ":" + path
		}
	}
	return path
}

// stageEnv returns the environment of stage 2 and s6-svscan, and what to
// dump into the container environment directory (nil: nothing, with
// S6_KEEP_ENV). Either way PATH is /init's.
func stageEnv(environ []string) (env, dump []string) {
	path := ""
	full := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		full = append(full, kv)
	}
	full = append(full, "PATH="+initPath(path))
	if keepEnv(environ) {
		return full, nil
	}
	return []string{"PATH=" + initPath(path)}, full
}

// Stage2Main is rc.init as s6-svscan's stage 2 runs it (`rc.init top CMD...`):
// it returns only when stage 2 failed, with exit code 111.
func Stage2Main(p Paths, args []string) int {
	if len(args) > 0 && args[0] == "top" {
		args = args[1:]
	}
	err := Stage2(p, args)
	fmt.Fprintln(os.Stderr, "s6-stage: rc.init:", err)
	return 111
}

// Stage2 brings the services up around cont-init.d as `s6-rc -u change top`
// does (BootServices), runs the CMD and halts the container with its exit
// code. It returns only on error.
func Stage2(p Paths, cmd []string) error {
	if err := waitSvscan(p, 10*time.Second); err != nil {
		return halt(p, 111, err)
	}
	if code := BootServices(p, func() { runDir(p.ContInit, "cont-init", 0) }); code != 0 {
		return halt(p, code, nil)
	}
	if len(cmd) == 0 {
		waitForever() // no CMD: run until the container is stopped
	}
	if arg0 := envValue(p.EnvDir, "S6_CMD_ARG0"); arg0 != "" {
		cmd = append(strings.Fields(arg0), cmd...)
	}
	if wd, err := os.ReadFile(p.WorkdirF); err == nil && len(wd) > 0 {
		if err := os.Chdir(string(wd)); err != nil {
			logf("stage2: cannot cd to %s: %v", wd, err)
		}
	}
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	code := 0
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		default:
			logf("stage2: cannot run %s: %v", cmd[0], err)
			code = 127
			if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
				code = 127
			} else if errors.Is(err, os.ErrPermission) {
				code = 126
			}
		}
	}
	return halt(p, code, nil)
}

func envValue(dir, key string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// waitSvscan waits until s6-svscan listens on its control fifo (checked
// by opening it, as s6-svscanctl would, without spawning a process).
func waitSvscan(p Paths, max time.Duration) error {
	ctl := filepath.Join(p.ScanDir, ".s6-svscan", "control")
	deadline := time.Now().Add(max)
	for {
		f, err := os.OpenFile(ctl, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			f.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("s6-svscan did not start on %s: %v", p.ScanDir, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runDir runs the executables of dir in lexical order, logging failures.
// A timeout of 0 waits as long as they take.
func runDir(dir, what string, timeout time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(dir, n)
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		c := exec.Command(path)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			logf("%s: %s: %v", what, path, err)
			continue
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		var timer <-chan time.Time
		if timeout > 0 {
			timer = time.After(timeout)
		}
		select {
		case err = <-done:
		case <-timer:
			c.Process.Kill()
			err = <-done
			logf("%s: %s took longer than %s: killed", what, path, timeout)
		}
		if err != nil {
			logf("%s: %s exited: %v", what, path, err)
		}
	}
}

func halt(p Paths, code int, cause error) error {
	if cause != nil {
		logf("stage2: %v", cause)
	}
	os.WriteFile(p.ExitCodeF, []byte(strconv.Itoa(code)), 0o644)
	if err := exec.Command(filepath.Join(p.BinDir, "s6-svscanctl"), "-t", p.ScanDir).Run(); err != nil {
		// Nothing to tell: terminate PID 1 directly.
		syscall.Kill(1, syscall.SIGTERM)
	}
	waitForever()
	return nil
}

// waitForever blocks until stage 3 kills this process.
func waitForever() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	for range ch {
	}
}

// Others is every process but PID 1, as stage 3 sees them: signalled all at
// once (kill(-1, sig)) and waited for. AllOthers is the real one; tests
// confine it to processes of their own.
type Others interface {
	Signal(sig syscall.Signal)
	Alive() bool
}

// AllOthers is every other process on the system.
type AllOthers struct{}

// Signal is kill(-1, sig).
func (AllOthers) Signal(sig syscall.Signal) { syscall.Kill(-1, sig) }

// Alive reports whether any other process is left.
func (AllOthers) Alive() bool { return othersAlive() }

// Stage3 runs as PID 1 after s6-svscan has stopped its services. It returns
// the container's exit code.
func Stage3(p Paths, others Others) int {
	runDir(p.ContFinish, "cont-finish", msEnv(p, "S6_KILL_FINISH_MAXTIME", 5000))
	grace := msEnv(p, "S6_KILL_GRACETIME", 3000)
	others.Signal(syscall.SIGTERM)
	others.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(grace)
	for others.Alive() && time.Now().Before(deadline) {
		reap()
		time.Sleep(5 * time.Millisecond)
	}
	if others.Alive() {
		others.Signal(syscall.SIGKILL)
	}
	reap()
	code := 0
	if b, err := os.ReadFile(p.ExitCodeF); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			code = n
		}
	}
	return code
}

func msEnv(p Paths, key string, def int) time.Duration {
	if n, err := strconv.Atoi(envValue(p.EnvDir, key)); err == nil && n >= 0 {
		return time.Duration(n) * time.Millisecond
	}
	return time.Duration(def) * time.Millisecond
}

func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// othersAlive reports whether any process other than this one is alive
// (zombies count as gone: they are reaped right after).
func othersAlive() bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if i := strings.LastIndexByte(line, ')'); i > 0 && i+2 < len(line) && line[i+2] == 'Z' {
			continue
		}
		return true
	}
	return false
}
