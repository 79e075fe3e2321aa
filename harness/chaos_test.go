package harness

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// The chaos run: seeded random steps of profile verbs from concurrent
// `docker exec`s (as root and as hermes) and faults (kill -9 of gateways,
// loggers and s6-supervise, SIGTERM while a gateway boots, docker restart,
// docker kill -s KILL then start), each followed by a check of the
// invariants of docs/reliability.md. Short by default; a long run:
//
//	go test -count=1 -v -run TestChaos ./harness/ -chaos.ops=400 -chaos.duration=30m
//
// A violation prints the seed, the step and the process table; the same
// seed replays the same sequence of steps (their timing is the machine's).
var (
	chaosSeed     = flag.Int64("chaos.seed", 0, "chaos run: seed of the step sequence (0: from the clock; printed)")
	chaosOps      = flag.Int("chaos.ops", 20, "chaos run: number of steps at most")
	chaosDuration = flag.Duration("chaos.duration", 75*time.Second, "chaos run: no new step after this much time")
	chaosNames    = flag.Int("chaos.profiles", 4, "chaos run: profile names in play besides default")
)

func TestChaos(t *testing.T) {
	t.Parallel()
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	forEachSource(t, func(t *testing.T, image string) {
		runChaos(t, image, seed, *chaosOps, *chaosDuration, *chaosNames)
	})
}

const hermesUID = 10000

// chaos is one run against one container.
type chaos struct {
	t     *testing.T
	c     *Container
	seed  int64
	rng   *rand.Rand
	step  int
	plan  string
	ip    string
	names []string
	// model: the profiles that exist and whether their gateway should run.
	model map[string]*chaosProfile
	stats map[string]int
}

type chaosProfile struct {
	running bool
	port    int
}

// action is one operation of a step.
type action struct {
	kind, profile, user string
}

func (a action) String() string {
	s := a.kind + " " + a.profile
	if a.user != "" {
		s += " as " + a.user
	}
	return s
}

// outcome is what an action returned.
type outcome struct {
	action
	exit int
	out  string
}

func runChaos(t *testing.T, image string, seed int64, ops int, budget time.Duration, nNames int) {
	t.Logf("chaos: seed %d (replay: go test -count=1 -run 'TestChaos' ./harness/ -chaos.seed=%d -chaos.ops=%d)", seed, seed, ops)
	x := &chaos{
		t: t, seed: seed, rng: rand.New(rand.NewSource(seed)),
		model: map[string]*chaosProfile{"default": {running: true, port: 8642}},
		stats: map[string]int{},
	}
	for i := 0; i < nNames; i++ {
		x.names = append(x.names, fmt.Sprintf("c%d", i))
	}
	// API_SERVER_HOST=0.0.0.0: each gateway's /health is asked from the
	// host on the container's address, independently of the image's tools.
	x.c = Start(t, image, Env("API_SERVER_HOST=0.0.0.0"), Cmd("gateway", "run"))
	x.plan = "boot"
	x.converge()
	start := time.Now()
	for x.step = 1; x.step <= ops && time.Since(start) < budget; x.step++ {
		x.runStep()
		x.converge()
	}
	keys := make([]string, 0, len(x.stats))
	for k := range x.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, x.stats[k])
	}
	t.Logf("chaos: seed %d: %d steps in %s, no violation;%s", seed, x.step-1, time.Since(start).Round(time.Second), b.String())
}

// runStep plans and runs one step: a container fault alone, or one to three
// actions at once.
func (x *chaos) runStep() {
	if r := x.rng.Intn(100); r < 10 {
		kind := "docker-restart"
		if r >= 5 {
			kind = "docker-kill-start"
		}
		x.plan = kind
		x.t.Logf("step %d: %s", x.step, x.plan)
		x.stats[kind]++
		x.containerFault(kind)
		return
	}
	acts := x.planActions(1 + x.rng.Intn(3))
	parts := make([]string, len(acts))
	for i, a := range acts {
		parts[i] = a.String()
		x.stats[a.kind]++
	}
	x.plan = strings.Join(parts, " | ")
	x.t.Logf("step %d: %s", x.step, x.plan)
	results := make([]outcome, len(acts))
	var wg sync.WaitGroup
	for i, a := range acts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = x.do(a)
		}()
	}
	wg.Wait()
	x.settle(results)
}

// planActions draws n actions. A profile created, deleted or whose
// s6-supervise is killed is in no other action of the step; verbs and the
// other kills of one profile may run together.
func (x *chaos) planActions(n int) []action {
	weights := []struct {
		kind string
		w    int
	}{
		{"create", 4}, {"delete", 2}, {"start", 4}, {"stop", 2}, {"restart", 2},
		{"kill-gateway", 2}, {"kill-logger", 1}, {"kill-supervise", 1}, {"kill-log-supervise", 1}, {"term-boot", 1},
	}
	total := 0
	for _, w := range weights {
		total += w.w
	}
	exclusive := map[string]bool{}
	used := map[string]bool{}
	var acts []action
	for tries := 0; len(acts) < n && tries < 50; tries++ {
		r := x.rng.Intn(total)
		kind := ""
		for _, w := range weights {
			if r < w.w {
				kind = w.kind
				break
			}
			r -= w.w
		}
		all := append([]string{"default"}, x.names...)
		name := all[x.rng.Intn(len(all))]
		user := []string{"root", "hermes"}[x.rng.Intn(2)]
		p, exists := x.model[name]
		switch kind {
		case "create", "delete":
			if name == "default" {
				continue
			}
		case "kill-gateway", "kill-logger", "kill-supervise", "kill-log-supervise", "term-boot":
			user = ""
			if !exists || (kind != "kill-logger" && kind != "kill-log-supervise" && !p.running) {
				continue
			}
		}
		excl := kind == "create" || kind == "delete" || kind == "kill-supervise" || kind == "kill-log-supervise"
		if exclusive[name] || (excl && used[name]) {
			continue
		}
		used[name] = true
		exclusive[name] = excl
		acts = append(acts, action{kind: kind, profile: name, user: user})
	}
	return acts
}

// do runs one action and returns its exit code and output.
func (x *chaos) do(a action) outcome {
	o := outcome{action: a}
	var r *icmd.Result
	slot := "/run/service/gateway-" + a.profile
	switch a.kind {
	case "create", "delete":
		r = x.c.ExecAs(a.user, "hermes", "profile", a.kind, a.profile)
		if a.kind == "create" && r.ExitCode == 0 {
			// Its own API port before anything can start it.
			port := 9100 + x.indexOf(a.profile)
			x.c.ExecAs("hermes", "sh", "-c", fmt.Sprintf("echo API_SERVER_PORT=%d >> /opt/data/profiles/%s/.env", port, a.profile)).Assert(x.t, icmd.Success)
		}
	case "start", "stop", "restart":
		args := []string{"hermes", "gateway", a.kind}
		if a.profile != "default" {
			args = []string{"hermes", "-p", a.profile, "gateway", a.kind}
		}
		r = x.c.ExecAs(a.user, args...)
	case "kill-gateway":
		r = x.c.Exec("sh", "-c", `p=$(/command/s6-svstat -o pid "$1") && [ "$p" -gt 0 ] && kill -KILL "$p"`, "-", slot)
	case "kill-logger":
		r = x.c.Exec("sh", "-c", `p=$(/command/s6-svstat -o pid "$1/log") && [ "$p" -gt 0 ] && kill -KILL "$p"`, "-", slot)
	case "kill-supervise", "kill-log-supervise":
		want := "gateway-" + a.profile
		if a.kind == "kill-log-supervise" {
			want += "/log"
		}
		pids := ""
		for _, p := range procsMatching(x.c.Procs(), `^s6-supervise `+regexp.QuoteMeta(want)+`$`) {
			pids += " " + itoa(p.Pid)
		}
		r = x.c.Exec("sh", "-c", "[ -n \"$1\" ] && kill -KILL $1", "-", pids)
	case "term-boot":
		// Restart, then SIGTERM the new process as soon as s6 has spawned
		// it: before the gateway is ready.
		r = x.c.Exec("sh", "-c", `s=$1; shift; old=$(/command/s6-svstat -o pid "$s")
hermes "$@" || exit $?
i=0; while [ $i -lt 500 ]; do p=$(/command/s6-svstat -o pid "$s"); if [ "$p" -gt 0 ] && [ "$p" != "$old" ]; then kill -TERM "$p"; echo "termed $p"; exit 0; fi; i=$((i+1)); done`,
			"-", slot, "-p", a.profile, "gateway", "restart")
	}
	o.exit = r.ExitCode
	o.out = strings.TrimSpace(r.Combined())
	return o
}

func (x *chaos) indexOf(name string) int {
	for i, n := range x.names {
		if n == name {
			return i
		}
	}
	return -1
}

// settle checks each CLI exit code against the model as it was before the
// step, then updates the model.
func (x *chaos) settle(results []outcome) {
	// Verbs of one profile that ran together: the last writer wins, and
	// either is right.
	desired := map[string]map[bool]bool{}
	for _, o := range results {
		_, exists := x.model[o.profile]
		want := 0
		switch o.kind {
		case "create":
			if exists {
				want = 1
			}
		case "delete", "start", "stop", "restart":
			if !exists {
				want = 1
			}
		case "term-boot":
			want = 0
		default:
			continue // a kill: best effort, its target may be between lives
		}
		if o.exit != want {
			x.violation("CLI exit code", fmt.Sprintf("%s exited %d, want %d (profile existed: %v): %s", o.action, o.exit, want, exists, o.out))
		}
		if want != 0 {
			continue
		}
		switch o.kind {
		case "create":
			x.model[o.profile] = &chaosProfile{port: 9100 + x.indexOf(o.profile)}
		case "delete":
			delete(x.model, o.profile)
		case "start", "restart", "term-boot", "stop":
			if desired[o.profile] == nil {
				desired[o.profile] = map[bool]bool{}
			}
			desired[o.profile][o.kind != "stop"] = true
		}
	}
	for name, set := range desired {
		if len(set) == 1 {
			for v := range set {
				x.model[name].running = v
			}
			continue
		}
		// Both: what the disk says is the model, checked against s6 below.
		d, err := x.readDesired(name)
		if err != nil {
			x.violation("torn state file", err.Error())
		}
		x.model[name].running = d == "running"
	}
}

func (x *chaos) readDesired(name string) (string, error) {
	snap := x.snapshot()
	if snap.err != nil {
		return "", snap.err
	}
	return snap.desired[name], nil
}

// containerFault restarts the container, gently or by SIGKILL.
func (x *chaos) containerFault(kind string) {
	switch kind {
	case "docker-restart":
		icmd.RunCommand("docker", "restart", "-t", "10", x.c.Name).Assert(x.t, icmd.Success)
	case "docker-kill-start":
		icmd.RunCommand("docker", "kill", "-s", "KILL", x.c.Name).Assert(x.t, icmd.Success)
		poll.WaitOn(x.t, func(poll.LogT) poll.Result {
			if x.c.Running() {
				return poll.Continue("container still running after SIGKILL")
			}
			return poll.Success()
		}, waitOpts...)
		icmd.RunCommand("docker", "start", x.c.Name).Assert(x.t, icmd.Success)
	}
	x.ip = ""
}

// snapshot is what the container looks like at one moment.
type snapshot struct {
	procs   []Proc
	slots   map[string]chaosSlot // gateway slot name → state
	dirs    map[string]bool      // profile directories
	desired map[string]string    // profile → desired state on disk ("" none)
	err     error                // a torn file: a hard violation
	pending string               // a file being written: look again
}

type chaosSlot struct {
	up, wantUp bool
	pid        int
	logUp      bool
	logPid     int
}

// snapshotScript prints every gateway slot's s6 state and logger state,
// the profile directories and each state and pid file, length-prefixed.
const snapshotScript = `cd /run/service || exit 1
for s in gateway-*; do [ -f "$s/hermes-slot" ] || continue
  printf 'slot %s %s %s\n' "$s" "$(/command/s6-svstat -o up,wantedup,pid "$s" 2>/dev/null | tr ' ' ,)" "$(/command/s6-svstat -o up,pid "$s/log" 2>/dev/null | tr ' ' ,)"
done
for d in /opt/data/profiles/*/; do [ -d "$d" ] && printf 'dir %s\n' "$(basename "$d")"; done
for f in /opt/data/gateway_state.json /opt/data/gateway.pid /opt/data/profiles/*/gateway_state.json /opt/data/profiles/*/gateway.pid; do
  [ -f "$f" ] || continue
  c=$(cat "$f"; echo x); c=${c%x}
  printf 'file %s %s\n%s\n' "$f" "${#c}" "$c"
done`

func (x *chaos) snapshot() snapshot {
	s := snapshot{slots: map[string]chaosSlot{}, dirs: map[string]bool{}, desired: map[string]string{}}
	r := x.c.Exec("sh", "-c", snapshotScript)
	if r.ExitCode != 0 {
		// The container is (re)booting: no scan directory yet.
		s.pending = fmt.Sprintf("snapshot: exit %d: %s", r.ExitCode, strings.TrimSpace(r.Combined()))
		return s
	}
	out := r.Stdout()
	for out != "" {
		line, rest, _ := strings.Cut(out, "\n")
		out = rest
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "slot":
			var sl chaosSlot
			if len(f) >= 3 {
				v := strings.Split(f[2], ",")
				if len(v) == 3 {
					sl.up, sl.wantUp = v[0] == "true", v[1] == "true"
					sl.pid, _ = strconv.Atoi(v[2])
				}
			}
			if len(f) >= 4 {
				v := strings.Split(f[3], ",")
				if len(v) == 2 {
					sl.logUp = v[0] == "true"
					sl.logPid, _ = strconv.Atoi(v[1])
				}
			}
			s.slots[f[1]] = sl
		case len(f) == 2 && f[0] == "dir":
			s.dirs[f[1]] = true
		case len(f) == 3 && f[0] == "file":
			n, _ := strconv.Atoi(f[2])
			if n > len(out) {
				n = len(out)
			}
			body := out[:n]
			out = strings.TrimPrefix(out[n:], "\n")
			name := "default"
			if m := regexp.MustCompile(`^/opt/data/profiles/([^/]+)/`).FindStringSubmatch(f[1]); m != nil {
				name = m[1]
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(body), &doc); err != nil || doc == nil {
				if strings.HasSuffix(f[1], ".pid") {
					// The agent creates its pid file (O_EXCL), then writes
					// it: empty for a moment (upstream's contract), a bare
					// pid in its older form.
					if _, err := strconv.Atoi(strings.TrimSpace(body)); err == nil {
						continue
					}
					if body == "" {
						s.pending = f[1] + " is empty (being written)"
						continue
					}
				}
				s.err = fmt.Errorf("%s does not parse (%v): %q", f[1], err, body)
				continue
			}
			if strings.HasSuffix(f[1], "gateway_state.json") {
				if d, ok := doc["desired_state"].(string); ok {
					s.desired[name] = d
				}
			}
		}
	}
	s.procs = x.c.Procs()
	return s
}

// check returns the first invariant that does not hold: hard ones (a
// torn file, a process of hermes running as root) are violations at once,
// the others must hold once the container has settled.
func (x *chaos) check() (hard, soft error) {
	snap := x.snapshot()
	if snap.err != nil {
		return snap.err, nil
	}
	if snap.pending != "" {
		return nil, errors.New(snap.pending)
	}
	hermesOnly := regexp.MustCompile(`^(/opt/hermes/bin/hermes-agent|s6-log|sleep infinity|/usr/local/bin/hermes-s6 probe)`)
	for _, p := range snap.procs {
		if hermesOnly.MatchString(p.Args) && p.UID != hermesUID {
			return fmt.Errorf("pid %d runs as uid %d, not hermes: %s", p.Pid, p.UID, p.Args), nil
		}
	}
	supervisor := map[string]int{} // s6-supervise's argument → pid
	byPid := map[int]Proc{}
	for _, p := range snap.procs {
		byPid[p.Pid] = p
		if a, ok := strings.CutPrefix(p.Args, "s6-supervise "); ok {
			if _, dup := supervisor[a]; dup {
				return nil, fmt.Errorf("two s6-supervise for %s", a)
			}
			supervisor[a] = p.Pid
		}
	}
	for _, p := range snap.procs {
		if p.State == "Z" {
			return nil, fmt.Errorf("zombie pid %d (parent %d): %s", p.Pid, p.PPid, p.Args)
		}
		if p.PPid == 1 && !strings.HasPrefix(p.Args, "s6-supervise ") && !strings.Contains(p.Args, "rc.init") {
			return nil, fmt.Errorf("orphan pid %d (parent is PID 1): %s", p.Pid, p.Args)
		}
	}
	watchers := procsMatching(snap.procs, `^/usr/local/bin/hermes-watch`)
	if len(watchers) != 1 || watchers[0].PPid != supervisor["main-hermes"] {
		return nil, fmt.Errorf("the watcher is not alive under its supervisor: %d hermes-watch processes", len(watchers))
	}
	if x.ip == "" {
		x.ip = x.c.Inspect("{{.NetworkSettings.IPAddress}}")
	}
	// The profiles on disk are the model's; each has a slot, and no other
	// gateway slot exists.
	for name := range snap.dirs {
		if x.model[name] == nil {
			return nil, fmt.Errorf("profile directory %s exists, but the profile was deleted or never created", name)
		}
	}
	for slot := range snap.slots {
		if name, _ := strings.CutPrefix(slot, "gateway-"); x.model[name] == nil {
			return nil, fmt.Errorf("slot %s is registered for a profile that does not exist", slot)
		}
	}
	names := make([]string, 0, len(x.model))
	for n := range x.model {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m := x.model[name]
		slot := "gateway-" + name
		if name != "default" && !snap.dirs[name] {
			return nil, fmt.Errorf("profile %s has no directory", name)
		}
		sl, ok := snap.slots[slot]
		if !ok {
			return nil, fmt.Errorf("profile %s has no slot %s", name, slot)
		}
		disk := snap.desired[name]
		if disk == "" {
			disk = "stopped" // no state file: down
		}
		if want := map[bool]string{true: "running", false: "stopped"}[m.running]; disk != want {
			return nil, fmt.Errorf("%s: desired state on disk %q, the CLI last set %q", name, disk, want)
		}
		if sl.wantUp != m.running {
			return nil, fmt.Errorf("%s: desired state on disk %q, s6 wants up: %v", name, disk, sl.wantUp)
		}
		if !sl.logUp || sl.logPid <= 0 {
			return nil, fmt.Errorf("%s: logger not up", slot)
		}
		logDir := " /opt/data/logs/gateways/" + name
		loggers := 0
		for _, p := range snap.procs {
			if strings.HasPrefix(p.Args, "s6-log ") && strings.HasSuffix(p.Args, logDir) {
				loggers++
				if p.Pid != sl.logPid || p.PPid != supervisor[slot+"/log"] {
					return nil, fmt.Errorf("%s: s6-log pid %d (parent %d) is not the logger s6 supervises (pid %d)", slot, p.Pid, p.PPid, sl.logPid)
				}
			}
		}
		if loggers != 1 {
			return nil, fmt.Errorf("%s: %d s6-log processes on %s, want 1", slot, loggers, logDir)
		}
		gw := `^/opt/hermes/bin/hermes-agent gateway run`
		if name != "default" {
			gw = `^/opt/hermes/bin/hermes-agent -p ` + regexp.QuoteMeta(name) + ` gateway run`
		}
		gws := procsMatching(snap.procs, gw)
		if !m.running {
			if sl.up || len(gws) != 0 {
				return nil, fmt.Errorf("%s should be stopped: slot up %v, %d gateway processes", slot, sl.up, len(gws))
			}
			continue
		}
		if !sl.up || len(gws) != 1 {
			return nil, fmt.Errorf("%s should run: slot up %v, %d gateway processes, want 1", slot, sl.up, len(gws))
		}
		if gws[0].Pid != sl.pid || gws[0].PPid != supervisor[slot] {
			return nil, fmt.Errorf("%s: gateway pid %d (parent %d) is not the one s6 supervises (pid %d)", slot, gws[0].Pid, gws[0].PPid, sl.pid)
		}
		h, err := x.health(m.port)
		if err != nil {
			return nil, fmt.Errorf("%s should serve: %v", slot, err)
		}
		if h.Pid != sl.pid {
			return nil, fmt.Errorf("%s: /health answers from pid %d, s6 supervises %d", slot, h.Pid, sl.pid)
		}
	}
	return nil, nil
}

var chaosClient = &http.Client{Timeout: 2 * time.Second}

func (x *chaos) health(port int) (Health, error) {
	resp, err := chaosClient.Get(fmt.Sprintf("http://%s:%d/health/detailed", x.ip, port))
	if err != nil {
		return Health{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return Health{}, fmt.Errorf("/health/detailed: %s", resp.Status)
	}
	var h Health
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// converge waits until every invariant holds; a hard violation, or a soft
// one that lasts the whole wait, fails the run.
func (x *chaos) converge() {
	var hard error
	poll.WaitOn(chaosT{x}, func(poll.LogT) poll.Result {
		var soft error
		hard, soft = x.check()
		if hard != nil {
			return poll.Success()
		}
		if soft != nil {
			return poll.Continue("%v", soft)
		}
		return poll.Success()
	}, poll.WithTimeout(90*time.Second), poll.WithDelay(100*time.Millisecond))
	if hard != nil {
		x.violation("invariant", hard.Error())
	}
	x.stats["checks"]++
}

// chaosT turns poll's timeout into a violation report.
type chaosT struct{ x *chaos }

func (c chaosT) Log(args ...any)                 { c.x.t.Log(args...) }
func (c chaosT) Logf(format string, args ...any) { c.x.t.Logf(format, args...) }
func (c chaosT) Fatalf(format string, args ...any) {
	c.x.violation("invariant not settled within 90s", fmt.Sprintf(format, args...))
}

// violation fails the run with everything needed to replay and read it.
func (x *chaos) violation(what, detail string) {
	x.t.Helper()
	x.t.Fatalf("chaos violation (%s) at step %d [%s], seed %d:\n  %s\nreplay: go test -count=1 -run 'TestChaos' ./harness/ -chaos.seed=%d -chaos.ops=%d\nprocess table:\n%s",
		what, x.step, x.plan, x.seed, detail, x.seed, x.step, procTree(x.c.Procs()))
}

// TestKilledLogSupervisorLeavesNoOrphanLogger: s6-supervise of a logger
// killed with SIGKILL leaves its s6-log running under PID 1, holding the
// log directory's lock; the new logger ends it and takes over, instead of
// failing on the lock once a second while the orphan lives (found by the
// chaos run, seed 3).
func TestKilledLogSupervisorLeavesNoOrphanLogger(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default/log", "up", func(s Slot) bool { return s.Up && s.Pid > 0 }), waitOpts...)
		old := c.Slot("gateway-default/log").Pid
		sup := procsMatching(c.Procs(), `^s6-supervise gateway-default/log$`)
		assert.Assert(t, is.Len(sup, 1))
		c.Exec("sh", "-c", "kill -KILL "+itoa(sup[0].Pid)).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default/log", "up with a new logger", func(s Slot) bool { return s.Up && s.Pid > 0 && s.Pid != old }), waitOpts...)
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			loggers := procsMatching(c.Procs(), `^s6-log .*/logs/gateways/default$`)
			if len(loggers) == 1 && loggers[0].PPid != 1 {
				return poll.Success()
			}
			return poll.Continue("loggers of default:\n%s", procTree(loggers))
		}, waitOpts...)
		poll.WaitOn(t, c.LogContains("slot-log: default: ended the orphaned s6-log (pid "+itoa(old)+")"), waitOpts...)
		assert.Check(t, !strings.Contains(c.Logs(), "unable to lock"), "the new logger must not fail on the orphan's lock")
	})
}
