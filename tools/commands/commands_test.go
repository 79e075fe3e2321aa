package commands

import (
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// captureStderr runs f with os.Stderr sent to a file and returns its exit
// code and what it wrote there.
func captureStderr(t *testing.T, f func() int) (int, string) {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	assert.NilError(t, err)
	old := os.Stderr
	os.Stderr = tmp
	code := func() int {
		defer func() { os.Stderr = old }()
		return f()
	}()
	b, err := os.ReadFile(tmp.Name())
	assert.NilError(t, err)
	return code, string(b)
}

func TestUnknownCommand(t *testing.T) {
	code, stderr := captureStderr(t, func() int { return Run("hermes-nope", []string{"x"}) })
	assert.Check(t, is.Equal(code, 2))
	assert.Check(t, is.Equal(stderr, `hermes-s6: unknown command "hermes-nope" (known: `+Names()+")\n"))
}

func TestNamesListsEveryCommandSorted(t *testing.T) {
	names := strings.Fields(Names())
	assert.Check(t, sort.StringsAreSorted(names))
	for _, n := range []string{"hermes", "hermes-entrypoint", "render-run", "hermes-setup", "hermes-reconcile",
		"hermes-watch", "hermes-slots-down", "init", "rc.init", "stage3", "probe", "slot-exec", "slot-log"} {
		assert.Check(t, is.Contains(names, n))
	}
	assert.Check(t, is.Len(names, len(Table())))
}

func TestManagerGivesTheHermesGroupControl(t *testing.T) {
	m := manager()
	assert.Check(t, is.Equal(m.ScanDir, s6.DefaultScanDir))
	a, ok := hermes()
	u, err := user.Lookup("hermes")
	if err != nil || os.Geteuid() != 0 {
		assert.Check(t, is.Equal(m.Group, -1), "only root gives control away")
		return
	}
	assert.Check(t, ok)
	assert.Check(t, is.Equal(strconv.Itoa(a.GID), u.Gid))
	assert.Check(t, is.Equal(m.Group, a.GID))
}

func TestHermesIsTheFront(t *testing.T) {
	code, stderr := captureStderr(t, func() int { return Run("hermes", []string{"gateway", "stop", "--bogus"}) })
	assert.Check(t, is.Equal(code, 2))
	assert.Check(t, is.Equal(stderr, "hermes: gateway stop: unknown argument \"--bogus\"\n"))
}

func requireNoSystemScanDir(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(s6.DefaultScanDir); err == nil {
		t.Skip(s6.DefaultScanDir + " exists: this test must not act on the system's slots")
	}
}

func TestSlotsDownWithoutAScanDirectory(t *testing.T) {
	requireNoSystemScanDir(t)
	assert.Check(t, is.Equal(Run("hermes-slots-down", nil), 0))
}

func TestWatchStopsOnSIGTERM(t *testing.T) {
	requireNoSystemScanDir(t)
	// This process must not die of the signal, whoever listens first.
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGTERM)
	defer signal.Stop(guard)

	done := make(chan int, 1)
	go func() { done <- Run("hermes-watch", nil) }()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case code := <-done:
			assert.Check(t, is.Equal(code, 0))
			return poll.Success()
		default:
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return poll.Continue("hermes-watch still running")
		}
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(20*time.Millisecond))
}

func TestInProcessOnlyForThisBinarysCommands(t *testing.T) {
	self, err := os.Executable()
	assert.NilError(t, err)
	link := filepath.Join(t.TempDir(), "hermes")
	assert.NilError(t, os.Symlink(self, link))

	assert.Check(t, inProcess(link, []string{"/usr/local/bin/hermes", "gateway", "run"}) != nil, "the front, through a symlink")
	assert.Check(t, inProcess(self, []string{"hermes-s6", "probe", "default"}) != nil, "hermes-s6 COMMAND")
	assert.Check(t, inProcess(self, []string{"hermes-s6"}) == nil, "no command")
	assert.Check(t, inProcess(self, []string{"hermes-s6", "slot-exec", "--", "x"}) == nil, "slot-exec does not nest")
	assert.Check(t, inProcess(self, []string{"s6-notifyoncheck"}) == nil, "not one of its commands")
	sh, err := exec.LookPath("sh")
	assert.NilError(t, err)
	assert.Check(t, inProcess(sh, []string{"hermes"}) == nil, "another binary, whatever its argv[0]")
}

// links installs exactly the linked names, each pointing at the binary, and
// refuses to overwrite what is there.
func TestLinksInstallsTheLinkedNames(t *testing.T) {
	dir := t.TempDir()
	assert.Check(t, is.Equal(Run("links", []string{dir}), 0))
	var want, got []string
	for _, c := range Table() {
		if c.Link {
			want = append(want, c.Name)
		}
	}
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	for _, e := range entries {
		got = append(got, e.Name())
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(target, "hermes-s6"), e.Name())
	}
	sort.Strings(want)
	assert.Check(t, is.DeepEqual(got, want))
	assert.Check(t, is.Contains(got, "hermes"))
	assert.Check(t, is.Contains(got, "hermes-init"), "the ENTRYPOINT")

	code, stderr := captureStderr(t, func() int { return Run("links", []string{dir}) })
	assert.Check(t, is.Equal(code, 1))
	assert.Check(t, is.Contains(stderr, "hermes-s6 links: symlink hermes-s6 "+dir+"/hermes: file exists"))
	code, stderr = captureStderr(t, func() int { return Run("links", nil) })
	assert.Check(t, is.Equal(code, 2))
	assert.Check(t, is.Equal(stderr, "usage: hermes-s6 links DIR\n"))
}
