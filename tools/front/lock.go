package front

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/agentcfg"
	"github.com/hermes-agent/hermes-s6/tools/gwlock"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
)

// lockRemind is how many retries at the longest pause (30 s) pass between
// two "still held" lines: about ten minutes.
const lockRemind = 20

// gatewayLock takes the cross-container lock of a profile's gateway
// (package gwlock) before the gateway is exec'd, as the user the gateway
// runs as: while another container holds it, it says which one and retries
// with a backoff (sleep). The descriptor is left open and inheritable, so
// the gateway holds the lock for as long as it runs. A lock file that
// cannot be opened at all (a read-only volume, say) is reported and the
// gateway starts without it: the agent's own gateway.lock still refuses a
// second gateway, only less helpfully.
func (f *Front) gatewayLock(name string, replace bool, sleep func(time.Duration)) error {
	if !profile.Exists(f.home(), name) {
		return nil // the agent says so
	}
	rel := "."
	if name != profile.Default {
		rel = "profiles/" + name
	}
	l, err := gwlock.Open(f.home(), rel, true)
	if err != nil {
		fmt.Fprintf(f.Stderr, "hermes: warning: profile %s: no cross-container gateway lock: %v\n", name, err)
		return nil
	}
	w := &gwlock.Waiter{
		Lock:   l,
		Self:   gwlock.Self(name, time.Now()),
		Sleep:  sleep,
		Logf:   func(format string, a ...any) { fmt.Fprintf(f.Stderr, "hermes: "+format+"\n", a...) },
		Alive:  func(pid int) bool { return syscall.Kill(pid, 0) != syscall.ESRCH },
		Remind: lockRemind,
		Now:    time.Now,
	}
	if replace {
		w.Replace = replaceGateway
	}
	if err := w.Wait(); err != nil {
		l.Close()
		fmt.Fprintf(f.Stderr, "hermes: warning: profile %s: no cross-container gateway lock: %v\n", name, err)
		return nil
	}
	if err := l.Inherit(); err != nil {
		l.Close()
		return fail(1, "profile %s: the gateway lock cannot be handed to the gateway: %v", name, err)
	}
	f.held = l
	return nil
}

// checkGateway reports, before the gateway of a profile starts, what is
// wrong with its settings (agentcfg.Check): one line each; a value the
// gateway cannot work with stops it with exit 78, which the slot does not
// restart.
func (f *Front) checkGateway(name string) error {
	var fatal []string
	for _, p := range agentcfg.Check(profile.Dir(f.home(), name), f.Getenv) {
		if p.Fatal {
			fatal = append(fatal, p.Msg)
			continue
		}
		fmt.Fprintf(f.Stderr, "hermes: warning: profile %s: %s\n", name, p.Msg)
	}
	if len(fatal) == 0 {
		return nil
	}
	start := "hermes gateway start"
	if name != profile.Default {
		start = "hermes -p " + name + " gateway start"
	}
	return fail(render.ExitConfig, "gateway of profile %s not started: %s; fix it, then `%s` (exit %d: not restarted)",
		name, strings.Join(fatal, "; "), start, render.ExitConfig)
}

// checkDashboard checks the supervised dashboard's --host and --port (from
// HERMES_DASHBOARD_HOST and HERMES_DASHBOARD_PORT) before the agent gets
// them: a value that cannot work is one line and exit 78, where the agent
// would exit 2 and be restarted every second.
func checkDashboard(args []string) error {
	var bad []string
	for i := 0; i < len(args); i++ {
		flag, v, hasValue := strings.Cut(args[i], "=")
		if flag != "--host" && flag != "--port" {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				bad = append(bad, flag+" has no value")
				continue
			}
			i++
			v = args[i]
		}
		var err error
		if flag == "--port" {
			err = agentcfg.ValidPort(v)
			if err == nil {
				continue
			}
			bad = append(bad, fmt.Sprintf("HERMES_DASHBOARD_PORT=%q: %v", v, err))
		} else if err = agentcfg.ValidHost(v); err != nil {
			bad = append(bad, fmt.Sprintf("HERMES_DASHBOARD_HOST=%q: %v", v, err))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fail(render.ExitConfig, "dashboard not started: %s; fix it and recreate the container (exit %d: not restarted)", strings.Join(bad, "; "), render.ExitConfig)
}

// heldElsewhere says which other container runs the gateway of a profile:
// its lock is held, and its holder is not of this container. nil when the
// lock is free, held here, or cannot be read.
func heldElsewhere(home, name string) error {
	rel := "."
	if name != profile.Default {
		rel = "profiles/" + name
	}
	l, err := gwlock.Open(home, rel, false)
	if err != nil {
		return nil
	}
	defer l.Close()
	if !l.Held() {
		return nil
	}
	h, err := l.Holder()
	if err != nil || h.SameContainer(gwlock.Self(name, time.Time{})) {
		return nil
	}
	return fmt.Errorf("the gateway of profile %s runs in another container sharing the volume: %s holds %s", name, h, l.Path)
}

// replaceGateway is `gateway run --replace` for a holder in this container
// (a gateway whose supervisor was killed lives on with the lock): SIGTERM,
// as the agent's own --replace does, if the pid is still a gateway.
func replaceGateway(h gwlock.Holder) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(h.Pid) + "/cmdline")
	if err != nil || !strings.Contains(string(b), "gateway") {
		return false
	}
	return syscall.Kill(h.Pid, syscall.SIGTERM) == nil
}
