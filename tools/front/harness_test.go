package front

import (
	"bytes"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
	"github.com/hermes-agent/hermes-s6/tools/slotadmin"
)

// liveScan starts a real s6-svscan on a temporary scan directory and returns
// a Manager for it and the HERMES_HOME its services see.
func liveScan(t *testing.T) (*s6.Manager, string) {
	t.Helper()
	scan := s6test.Start(t)
	return s6.New(scan.Dir), scan.Home
}

var pollOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(20 * time.Millisecond)}

// standInGateway writes what the supervised slots run instead of the real
// front: a process that stays up until it is stopped.
func standInGateway(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "front")
	script := "#!/bin/sh\necho \"stand-in gateway $*\"\nexec sleep 1000\n"
	assert.NilError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

// slotTemplate is render.GatewaySlot pointed at the stand-in gateway, run
// by /bin/sh as the current user.
func slotTemplate(t *testing.T) func(string) render.Slot {
	u, err := user.Current()
	assert.NilError(t, err)
	front := standInGateway(t)
	tool := s6test.Tool(t)
	return func(name string) render.Slot {
		s := render.GatewaySlot(name)
		s.Front, s.Shell, s.User, s.Tool = front, "/bin/sh", u.Username, tool
		return s
	}
}

// execCall is one exec (or run) the front asked for.
type execCall struct {
	Path string
	Argv []string
	Env  []string
}

// hermes drives (*Front).Main with fakes for everything that would replace
// or block the test process.
type hermes struct {
	front  *Front
	env    map[string]string
	stdout bytes.Buffer
	stderr bytes.Buffer

	execs    []execCall
	execErr  error // what exec returns; nil means the process is replaced
	runs     []execCall
	agent    func(argv []string) (int, error)  // what the agent does when run
	blocks   int                               // how often WaitSignal was called
	history  func(slot string, n int) []string // the watcher's history (nil: none)
	health   func(name string) error           // a gateway's health (nil: healthy)
	cmd      []string                          // the container's CMD
	become   func() (bool, error)              // BecomeHermes (nil: nothing to drop)
	chdirs   []string                          // directories Chdir was asked for
	chdirErr error                             // what Chdir returns
	// template is the slot the admin registers for a profile.
	template func(string) render.Slot
}

// result is the outcome of one `hermes ARGS...`.
type result struct {
	code     int       // exit code returned by Main
	replaced bool      // an exec replaced the process: Main never returned
	exec     *execCall // the last exec asked for during this invocation
}

const agentBin = "/opt/test/hermes-agent"

// newHermes returns a front on m (nil: not under s6) and home.
func newHermes(t *testing.T, m *s6.Manager, home string) *hermes {
	h := &hermes{env: map[string]string{
		"HERMES_HOME":      home,
		"HERMES_AGENT_BIN": agentBin,
	}}
	underS6 := m != nil
	if m == nil {
		m = s6.New(filepath.Join(t.TempDir(), "no-scan-dir"))
	}
	h.front = &Front{
		Getenv:  func(k string) string { return h.env[k] },
		Environ: []string{"HERMES_HOME=" + home, "PATH=/usr/bin:/bin"},
		Stdout:  &h.stdout,
		Stderr:  &h.stderr,
		UnderS6: underS6,
		S6:      m,
		Sys:     fakeSystem{h},
		UID:     -1,
		GID:     -1,
	}
	if underS6 {
		h.superviseWith(t, m)
	}
	return h
}

// superviseWith puts the front under s6 on m, with an admin that registers
// slotTemplate's slots.
func (h *hermes) superviseWith(t *testing.T, m *s6.Manager) {
	if h.template == nil {
		h.template = slotTemplate(t)
	}
	h.front.UnderS6, h.front.S6 = true, m
	h.front.Admin = slotadmin.Local{S6: m, Home: h.env["HERMES_HOME"], Slot: h.template}
}

// fakeSystem is the System of a test front: it records what the front asks
// of its process and never replaces or blocks the test process.
type fakeSystem struct{ h *hermes }

func (s fakeSystem) Exec(path string, argv, env []string) error {
	s.h.execs = append(s.h.execs, execCall{path, argv, env})
	if s.h.execErr != nil {
		return s.h.execErr
	}
	runtime.Goexit() // the process image is replaced: nothing after exec runs
	return nil
}

func (s fakeSystem) Run(path string, argv, env []string) (int, error) {
	s.h.runs = append(s.h.runs, execCall{path, argv, env})
	if s.h.agent == nil {
		return 0, nil
	}
	return s.h.agent(argv)
}

func (s fakeSystem) WaitSignal() int { s.h.blocks++; return 15 }

func (s fakeSystem) Chdir(dir string) error {
	s.h.chdirs = append(s.h.chdirs, dir)
	return s.h.chdirErr
}

func (s fakeSystem) BecomeHermes() (bool, error) {
	if s.h.become == nil {
		return false, nil
	}
	return s.h.become()
}

func (s fakeSystem) History(slot string, n int) []string {
	if s.h.history == nil {
		return nil
	}
	return s.h.history(slot, n)
}

func (s fakeSystem) Health(_, name string) error {
	if s.h.health == nil {
		return nil
	}
	return s.h.health(name)
}

func (s fakeSystem) CMD() []string { return s.h.cmd }

// run runs `hermes args...` to its end (its exit or its exec).
func (h *hermes) run(args ...string) result {
	h.stdout.Reset()
	h.stderr.Reset()
	n := len(h.execs)
	var res result
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		res.code = h.front.Main(args)
		returned = true
	}()
	<-done
	res.replaced = !returned
	if len(h.execs) > n {
		res.exec = &h.execs[len(h.execs)-1]
	}
	return res
}

// mkProfile creates the directory of profile name under home.
func mkProfile(t *testing.T, home, name string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "profiles", name), 0o755))
}

// tree lists every path under dirs, for "nothing changed" checks.
func tree(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			out = append(out, p+" "+e.Type().String())
			return nil
		})
		assert.NilError(t, err)
	}
	sort.Strings(out)
	return out
}

// slotIs waits until slot satisfies want.
func slotIs(m *s6.Manager, slot string, want func(s6.Status) bool, what string) poll.Check {
	return func(poll.LogT) poll.Result {
		st, err := m.Status(slot)
		if err != nil {
			return poll.Continue("status %s: %v", slot, err)
		}
		if want(st) {
			return poll.Success()
		}
		return poll.Continue("%s: want %s, have %s", slot, what, st)
	}
}

func isUp(s s6.Status) bool   { return s.Up && s.WantUp && s.Pid > 0 }
func isDown(s s6.Status) bool { return !s.Up && !s.WantUp }
