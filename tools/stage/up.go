package stage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// BootServices does, for this layer, what rc.init's `s6-rc -u change top`
// does (s6-overlay@v3.2.3.0 …/skel/rc.init; s6-rc@v0.6.1.0
// src/s6-rc/s6-rc.c): it brings up s6rc-oneshot-runner, calls base (the
// oneshots of s6-overlay's base bundle: here cont-init.d), then brings up the
// rest of the boot plan, each longrun once what it needs is up. A longrun is
// started with `s6-svc -uwu` (-uwU when it has a notification-fd), bounded by
// its timeout-up and S6_CMD_WAIT_FOR_SERVICES_MAXTIME (0, the default: no
// bound), and its down file is removed once it is up; one that fails is sent
// down again and what needs it is not started. With S6_BEHAVIOUR_IF_STAGE2_FAILS
// ≥ 1 a failure is reported, ≥ 2 it stops the container: the returned code is
// then nonzero.
func BootServices(p Paths, base func()) int {
	plan, err := Plan(p.RcD)
	if err != nil {
		logf("stage2: %v", err) // stage 1 refused it already
		plan = BootPlan{First: []string{OneshotRunner}}
	}
	u := upper{p: p, v: uintEnv(p, "S6_VERBOSITY", 2), failed: map[string]bool{}}
	if ms := uintEnv(p, "S6_CMD_WAIT_FOR_SERVICES_MAXTIME", 0); ms > 0 {
		u.deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	u.start(plan.First, plan)
	base()
	u.start(plan.Rest, plan)
	if b := uintEnv(p, "S6_BEHAVIOUR_IF_STAGE2_FAILS", 0); len(u.failed) > 0 && b > 0 {
		fmt.Fprintf(os.Stderr, "%s: warning: s6-rc failed to properly bring all the services up! Check your logs (in /run/uncaught-logs/current if you have in-container logging) for more information.\n", p.RcInit)
		if b >= 2 {
			fmt.Fprintf(os.Stderr, "%s: fatal: stopping the container.\n", p.RcInit)
			return 1
		}
	}
	return 0
}

type upper struct {
	p        Paths
	v        int
	deadline time.Time
	failed   map[string]bool
}

func (u *upper) start(names []string, plan BootPlan) {
	for _, n := range names {
		blocked := false
		for _, d := range plan.Needs[n] {
			blocked = blocked || u.failed[d]
		}
		if blocked || !u.up(n, plan.TimeoutUp[n]) {
			u.failed[n] = true
		}
	}
}

// up starts one longrun as s6-rc does (start_longrun, success_longrun,
// failure_longrun), with s6-rc's messages.
func (u *upper) up(name string, timeoutUp uint64) bool {
	dir := filepath.Join(u.p.LiveDir, "servicedirs", name)
	if u.v >= 2 {
		fmt.Fprintf(os.Stderr, "s6-rc: info: service %s: starting\n", name)
	}
	if err := waitSupervised(dir, 10*time.Second); err != nil {
		if u.v >= 1 {
			fmt.Fprintf(os.Stderr, "s6-rc: warning: unable to start service %s: %v\n", name, err)
		}
		return false
	}
	flag := "-uwu"
	if _, err := os.Stat(filepath.Join(dir, "notification-fd")); err == nil {
		flag = "-uwU"
	}
	svc := filepath.Join(u.p.BinDir, "s6-svc")
	c := exec.Command(svc, flag, "-T", strconv.FormatUint(u.timeout(timeoutUp), 10), "--", dir)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	err := c.Run()
	if err == nil {
		if err := os.Remove(filepath.Join(dir, "down")); err != nil && !errors.Is(err, os.ErrNotExist) && u.v >= 1 {
			fmt.Fprintf(os.Stderr, "s6-rc: warning: unable to unlink %s/down: %v\n", dir, err)
		}
		if u.v >= 2 {
			fmt.Fprintf(os.Stderr, "s6-rc: info: service %s successfully started\n", name)
		}
		return true
	}
	if u.v >= 1 {
		how := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			how = "exited " + strconv.Itoa(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				how = "crashed with signal " + strconv.Itoa(int(ws.Signal()))
			}
		}
		fmt.Fprintf(os.Stderr, "s6-rc: warning: unable to start service %s: command %s\n", name, how)
	}
	exec.Command(svc, "-d", "--", dir).Run()
	return false
}

// timeout is s6-rc's compute_timeout: the service's timeout-up, shortened
// to what is left of the global deadline (at least 1 ms); 0 is none.
func (u *upper) timeout(t uint64) uint64 {
	if u.deadline.IsZero() {
		return t
	}
	left := uint64(max(time.Until(u.deadline).Milliseconds(), 1))
	if t == 0 || left < t {
		return left
	}
	return t
}

// waitSupervised waits until s6-supervise runs in dir: until its control
// fifo has a reader (s6-rc-init waits for the same before s6-rc runs).
func waitSupervised(dir string, max time.Duration) error {
	ctl := filepath.Join(dir, "supervise", "control")
	deadline := time.Now().Add(max)
	for {
		f, err := os.OpenFile(ctl, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			f.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not supervised: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// uintEnv reads a setting of the container environment as rc.init does
// (a number, or else the default).
func uintEnv(p Paths, key string, def int) int {
	v := envValue(p.EnvDir, key)
	n, err := strconv.Atoi(v)
	if err != nil || v[0] < '0' || v[0] > '9' { // digits only, as rc.init's ^[[:digit:]]+$
		return def
	}
	return n
}
