// Package stage is the small s6-overlay-compatible stage layer used with
// Debian's s6 (S6_SOURCE=debian). It gives the image what s6-overlay 3.2
// gives it, as far as this image relies on it:
//
//   - stage 1 (/init, PID 1): dump the container environment, lay the
//     s6-rc.d longruns into /run/service (down unless in the user bundle),
//     start stage 2, then exec s6-svscan as PID 1 on /run/service;
//   - stage 2 (rc.init top CMD...): run /etc/cont-init.d/* in order, wait
//     for the user bundle, run the CMD (with S6_CMD_ARG0 prepended) in the
//     original working directory; its exit code becomes the container's;
//   - stage 3 (.s6-svscan/finish): run /etc/cont-finish.d/*, TERM everything
//     left, wait up to S6_KILL_GRACETIME (returning as soon as nothing is
//     left), KILL the rest and exit with the recorded code.
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
	ScanDir    string // /run/service
	EnvDir     string // /run/s6/container_environment
	WorkdirF   string // /run/s6/workdir
	ExitCodeF  string // /run/s6-linux-init-container-results/exitcode
	RcInit     string // /run/s6/basedir/scripts/rc.init (stage 2 argv[0])
	RcD        string // /etc/s6-overlay/s6-rc.d
	ContInit   string // /etc/cont-init.d
	ContFinish string // /etc/cont-finish.d
	Self       string // this multi-call binary
	BinDir     string // /command
}

// DefaultPaths are the paths in the image.
var DefaultPaths = Paths{
	ScanDir:    "/run/service",
	EnvDir:     contenv.Dir,
	WorkdirF:   "/run/s6/workdir",
	ExitCodeF:  "/run/s6-linux-init-container-results/exitcode",
	RcInit:     "/run/s6/basedir/scripts/rc.init",
	RcD:        "/etc/s6-overlay/s6-rc.d",
	ContInit:   "/etc/cont-init.d",
	ContFinish: "/etc/cont-finish.d",
	Self:       "/usr/local/bin/hermes-s6",
	BinDir:     "/command",
}

// BasePath is prepended to PATH, as s6-overlay does.
const BasePath = "/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "s6-stage: "+format+"\n", a...)
}

// Init is stage 1. It only returns on error; on success it becomes s6-svscan.
func Init(p Paths, cmd []string) error {
	wd, _ := os.Getwd()
	for _, d := range []string{p.ScanDir, filepath.Dir(p.EnvDir), filepath.Dir(p.ExitCodeF), filepath.Dir(p.RcInit)} {
		// A restarted container keeps /run unless it is a tmpfs: start clean.
		if err := os.RemoveAll(d); err != nil {
			return err
		}
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
	if os.Getenv("S6_KEEP_ENV") == "" || os.Getenv("S6_KEEP_ENV") == "0" {
		if err := contenv.Dump(p.EnvDir, os.Environ()); err != nil {
			return err
		}
	}
	if err := os.Symlink(p.Self, p.RcInit); err != nil {
		return err
	}
	if err := LayServices(p.RcD, p.ScanDir); err != nil {
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
	env := scrubbedEnv()
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

func scrubbedEnv() []string {
	path := BasePath
	if v := os.Getenv("PATH"); v != "" && !strings.HasPrefix(v, "/command:") {
		path = "/command:" + v
	}
	env := []string{"PATH=" + path}
	// s6-overlay reads its own S6_* settings from the container environment.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "S6_") {
			env = append(env, kv)
		}
	}
	return env
}

// LayServices copies every longrun of an s6-rc source directory into the
// scan directory: down unless it is in the user bundle; a longrun's
// producer-for consumer becomes its log/ subdirectory.
func LayServices(rcd, scan string) error {
	entries, err := os.ReadDir(rcd)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	user := bundle(rcd, "user")
	consumers := map[string]bool{}
	for _, e := range entries {
		if v, err := readLine(filepath.Join(rcd, e.Name(), "consumer-for")); err == nil && v != "" {
			consumers[e.Name()] = true
		}
	}
	for _, e := range entries {
		name := e.Name()
		src := filepath.Join(rcd, name)
		if t, _ := readLine(filepath.Join(src, "type")); t != "longrun" || consumers[name] {
			continue
		}
		dst := filepath.Join(scan, name)
		if err := copyTree(src, dst); err != nil {
			return fmt.Errorf("laying %s: %w", name, err)
		}
		if logger, err := readLine(filepath.Join(src, "producer-for")); err == nil && logger != "" {
			if err := copyTree(filepath.Join(rcd, logger), filepath.Join(dst, "log")); err != nil {
				return fmt.Errorf("laying %s/log: %w", name, err)
			}
		}
		if !user[name] {
			if err := os.WriteFile(filepath.Join(dst, "down"), nil, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func bundle(rcd, name string) map[string]bool {
	out := map[string]bool{}
	for _, dir := range []string{
		filepath.Join(rcd, name, "contents.d"),
		filepath.Join(filepath.Dir(rcd), "user-bundles.d", name, "contents.d"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			out[e.Name()] = true
		}
	}
	return out
}

func readLine(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

// copyTree copies regular files and directories, keeping modes. s6-rc
// metadata that s6-supervise does not use is skipped.
func copyTree(src, dst string) error {
	skip := map[string]bool{"dependencies.d": true, "contents.d": true, "producer-for": true, "consumer-for": true, "pipeline-name": true, "dependencies": true}
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if skip[strings.Split(rel, string(filepath.Separator))[0]] {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}

// Stage2 runs cont-init.d, waits for the user bundle, runs the CMD and halts
// the container with its exit code. It returns only on error.
func Stage2(p Paths, cmd []string) error {
	if err := waitSvscan(p, 10*time.Second); err != nil {
		return halt(p, 111, err)
	}
	runDir(p.ContInit, "cont-init", 0)
	waitUserBundle(p)
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

func waitUserBundle(p Paths) {
	entries, _ := os.ReadDir(p.ScanDir)
	var dirs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(p.ScanDir, e.Name(), "down")); err == nil {
			continue
		}
		dirs = append(dirs, filepath.Join(p.ScanDir, e.Name()))
	}
	if len(dirs) == 0 {
		return
	}
	args := append([]string{"-a", "-u", "-t", "5000"}, dirs...)
	if err := exec.Command(filepath.Join(p.BinDir, "s6-svwait"), args...).Run(); err != nil {
		logf("stage2: user bundle not up within 5s: %v", err)
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

// Stage3 runs as PID 1 after s6-svscan has stopped its services. It returns
// the container's exit code.
func Stage3(p Paths) int {
	runDir(p.ContFinish, "cont-finish", msEnv(p, "S6_KILL_FINISH_MAXTIME", 5000))
	grace := msEnv(p, "S6_KILL_GRACETIME", 3000)
	syscall.Kill(-1, syscall.SIGTERM)
	syscall.Kill(-1, syscall.SIGCONT)
	deadline := time.Now().Add(grace)
	for othersAlive() && time.Now().Before(deadline) {
		reap()
		time.Sleep(5 * time.Millisecond)
	}
	if othersAlive() {
		syscall.Kill(-1, syscall.SIGKILL)
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
