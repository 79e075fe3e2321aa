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

	"github.com/hermes-agent/hermes-s6/tools/render"
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
	assert.Check(t, is.Len(names, len(table)))
}

// files lists the files under dir with their contents.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[rel+" "+info.Mode().String()] = string(b)
		return err
	})
	assert.NilError(t, err)
	return out
}

func want(t *testing.T, fs []render.File, prefix string) map[string]string {
	out := map[string]string{}
	for _, f := range fs {
		out[filepath.Join(prefix, f.Path)+" "+f.Mode.String()] = string(f.Data)
	}
	return out
}

func TestRenderRunWritesScandirLayout(t *testing.T) {
	out := t.TempDir()
	code, stderr := captureStderr(t, func() int {
		return Run("render-run", []string{"-out", out, "gateway-default", "dashboard", "gateway-work"})
	})
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Equal(stderr, ""))
	expected := map[string]string{}
	for _, s := range []render.Slot{render.GatewaySlot("default"), render.DashboardSlot(), render.GatewaySlot("work")} {
		fs, err := render.Files(s)
		assert.NilError(t, err)
		for k, v := range want(t, fs, s.Name) {
			expected[k] = v
		}
	}
	assert.Check(t, is.DeepEqual(files(t, out), expected))
	assert.Check(t, is.Contains(files(t, out)["gateway-default/run -rwxr-xr-x"], " -env HERMES_S6_SUPERVISED_CHILD=1 "))
	_, err := os.Stat(filepath.Join(out, "gateway-work", "down"))
	assert.Check(t, err, "a slot is rendered down")
}

func TestRenderRunUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no arguments", nil, "usage: render-run -out DIR SLOT..."},
		{"no slots", []string{"-out", "/tmp/x"}, "usage: render-run -out DIR SLOT..."},
		{"no -out", []string{"dashboard"}, "usage: render-run -out DIR SLOT..."},
		{"unknown flag", []string{"-force", "dashboard"}, "flag provided but not defined: -force"},
		{"unknown slot", []string{"-out", "OUT", "worker"}, `render-run: unknown slot "worker": use gateway-PROFILE or dashboard`},
		{"invalid profile", []string{"-out", "OUT", "gateway-Work"}, `render-run: unknown slot "gateway-Work"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			for i, a := range tc.args {
				if a == "OUT" {
					tc.args[i] = out
				}
			}
			code, stderr := captureStderr(t, func() int { return renderRun(tc.args) })
			assert.Check(t, is.Equal(code, 2))
			assert.Check(t, is.Contains(stderr, tc.msg))
			entries, err := os.ReadDir(out)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "nothing written")
		})
	}
}

func TestRenderRunWriteFailure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	for _, args := range [][]string{{"-out", file, "dashboard"}, {"-out", file, "dashboard"}} {
		code, stderr := captureStderr(t, func() int { return renderRun(args) })
		assert.Check(t, is.Equal(code, 1), "%q", args)
		assert.Check(t, is.Contains(stderr, "render-run: render: "), "%q", args)
	}
}

func TestManagerGivesTheHermesGroupControl(t *testing.T) {
	m := manager()
	assert.Check(t, is.Equal(m.ScanDir, s6.DefaultScanDir))
	uid, gid, ok := hermesAccount()
	u, err := user.Lookup("hermes")
	if err != nil {
		assert.Check(t, !ok && uid == -1 && gid == -1)
		assert.Check(t, is.Equal(m.Group, -1))
		return
	}
	assert.Check(t, ok)
	assert.Check(t, is.Equal(strconv.Itoa(uid), u.Uid))
	assert.Check(t, is.Equal(strconv.Itoa(gid), u.Gid))
	assert.Check(t, is.Equal(m.Group, gid))
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
