package gwlock

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// other holds the lock of dir through an open file of its own, as another
// container's gateway would; release drops it.
func other(t *testing.T, dir string, h Holder) (release func()) {
	t.Helper()
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	assert.NilError(t, l.TryLock())
	assert.NilError(t, l.Record(h))
	done := false
	release = func() {
		if !done {
			l.Close()
			done = true
		}
	}
	t.Cleanup(release)
	return release
}

var elsewhere = Holder{Host: "c0ffee123456", Boot: "b", PidNS: "pid:[1]", Pid: 77, Since: "2030-01-02T03:04:05Z", Profile: "default"}

func TestWaitsWhileHeldThenTakesOver(t *testing.T) {
	dir := t.TempDir()
	release := other(t, dir, elsewhere)

	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	defer l.Close()
	var lines []string
	var pauses []time.Duration
	self := Self("default", time.Date(2030, 1, 2, 4, 0, 0, 0, time.UTC))
	w := &Waiter{
		Lock: l, Self: self,
		Sleep: func(d time.Duration) {
			pauses = append(pauses, d)
			if len(pauses) == 7 {
				release() // the other container is removed
			}
		},
		Logf: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) },
	}
	assert.NilError(t, w.Wait())
	assert.Check(t, is.DeepEqual(pauses, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}))
	assert.Check(t, is.Len(lines, 2), "one line when it starts waiting, one when it takes over: %q", lines)
	assert.Check(t, is.Contains(lines[0], "is held by container c0ffee123456 (gateway pid 77 there, since 2030-01-02T03:04:05Z)"))
	assert.Check(t, is.Contains(lines[0], "not starting a second gateway for profile default"))
	assert.Check(t, is.Contains(lines[1], "took the gateway lock "+filepath.Join(dir, FileName)+" after 7 retries"))
	assert.Check(t, is.Equal(w.Retries(), 7))

	// Held now, and named as ours.
	probe, err := Open(dir, ".", false)
	assert.NilError(t, err)
	defer probe.Close()
	assert.Check(t, probe.Held())
	h, err := probe.Holder()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(h, self))
	assert.Check(t, h.SameContainer(Self("x", time.Now())))
	assert.Check(t, !elsewhere.SameContainer(self))
	assert.Check(t, is.Equal(probe.TryLock(), ErrHeld))
}

func TestSaysSoWhenTheHolderChangesAndReminds(t *testing.T) {
	dir := t.TempDir()
	release := other(t, dir, elsewhere)
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	defer l.Close()
	var lines []string
	n := 0
	w := &Waiter{Lock: l, Self: Self("default", time.Now()), Remind: 3,
		Sleep: func(time.Duration) {
			n++
			switch n {
			case 2:
				release()
				second := elsewhere
				second.Host = "beef"
				release = other(t, dir, second)
			case 9:
				release()
			}
		},
		Logf: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) },
	}
	assert.NilError(t, w.Wait())
	var held []string
	for _, l := range lines {
		if strings.Contains(l, "is held by") {
			held = append(held, l)
		}
	}
	// c0ffee (tries 1, 2), beef (3, 4, 5), reminder (6, 7, 8), reminder (9).
	assert.Check(t, is.Len(held, 4), "%q", lines)
	assert.Check(t, is.Contains(held[0], "c0ffee123456"))
	for _, l := range held[1:] {
		assert.Check(t, is.Contains(l, "container beef "))
	}
}

func TestAHolderOfThisContainerThatExited(t *testing.T) {
	dir := t.TempDir()
	self := Self("work", time.Now())
	gone := self
	gone.Pid = 999999999
	release := other(t, dir, gone)
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	defer l.Close()
	var lines []string
	w := &Waiter{Lock: l, Self: self, Sleep: func(time.Duration) { release() },
		Alive: func(pid int) bool { return syscall.Kill(pid, 0) == nil },
		Logf:  func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }}
	assert.NilError(t, w.Wait())
	assert.Check(t, is.Contains(lines[0], "held by this container (gateway pid 999999999"))
	assert.Check(t, is.Contains(lines[0], "that gateway has exited: a process it started keeps the descriptor open"))
}

func TestUnreadableContentsAreNamedNotTrusted(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     "\x1b[31mred\x00",
		"too large":    strings.Repeat("x", maxContents+1),
		"empty":        "",
		"escape codes": `{"host":"\u001b[2Jevil\nline","pid":1,"since":"now"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, ".", true)
			assert.NilError(t, err)
			defer l.Close()
			assert.NilError(t, l.TryLock())
			_, err = unix.Pwrite(l.fd, []byte(body), 0)
			assert.NilError(t, err)

			mine, err := Open(dir, ".", true)
			assert.NilError(t, err)
			defer mine.Close()
			var line string
			w := &Waiter{Lock: mine, Self: Self("default", time.Now()),
				Sleep: func(time.Duration) { l.Close() },
				Logf: func(format string, a ...any) {
					if line == "" {
						line = fmt.Sprintf(format, a...)
					}
				}}
			assert.NilError(t, w.Wait())
			for _, c := range line {
				assert.Check(t, c >= 0x20 && c != 0x7f, "unprintable %q in %q", c, line)
			}
			assert.Check(t, is.Contains(line, "is held by "))
		})
	}
}

func TestOpenRefusesWhatIsNotAPlainFileInARealDirectory(t *testing.T) {
	home := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	assert.NilError(t, os.WriteFile(target, []byte("keep"), 0o600))
	outside := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "profiles", "real"), 0o755))

	// The lock file itself a symlink, a hard link, a FIFO, a directory.
	link := filepath.Join(home, "profiles", "symlink")
	assert.NilError(t, os.Mkdir(link, 0o755))
	assert.NilError(t, os.Symlink(target, filepath.Join(link, FileName)))
	hard := filepath.Join(home, "profiles", "hardlink")
	assert.NilError(t, os.Mkdir(hard, 0o755))
	assert.NilError(t, os.Link(target, filepath.Join(hard, FileName)))
	fifo := filepath.Join(home, "profiles", "fifo")
	assert.NilError(t, os.Mkdir(fifo, 0o755))
	assert.NilError(t, syscall.Mkfifo(filepath.Join(fifo, FileName), 0o644))
	dirLock := filepath.Join(home, "profiles", "dir")
	assert.NilError(t, os.MkdirAll(filepath.Join(dirLock, FileName), 0o755))
	// The profile directory a symlink out of home.
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "profiles", "escape")))

	for _, tc := range []struct{ rel, err string }{
		{"profiles/symlink", "symlink or not a directory: refused"},
		{"profiles/hardlink", "not a plain file"},
		{"profiles/fifo", "not a plain file"},
		{"profiles/dir", "is a directory|not a plain file"},
		{"profiles/escape", "symlink or not a directory: refused"},
		{"profiles/../..", "leaves"},
	} {
		for _, create := range []bool{true, false} {
			_, err := Open(home, tc.rel, create)
			assert.Check(t, err != nil && regexp.MustCompile(tc.err).MatchString(err.Error()), "%s create=%v: %v", tc.rel, create, err)
		}
	}
	b, err := os.ReadFile(target)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "keep"), "the link target is untouched")
	entries, err := os.ReadDir(outside)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "nothing created through the symlinked profile directory")

	// Read-only opening never creates.
	_, err = Open(home, "profiles/real", false)
	assert.Check(t, os.IsNotExist(err), "%v", err)
	l, err := Open(home, "profiles/real", true)
	assert.NilError(t, err)
	l.Close()
	st, err := os.Stat(filepath.Join(home, "profiles", "real", FileName))
	assert.NilError(t, err)
	assert.Check(t, st.Mode().IsRegular())
}

// The lock is the exec'd program's: it outlives the process that took it
// and dies with the program.
func TestTheExecedProgramHoldsTheLock(t *testing.T) {
	if os.Getenv("GWLOCK_TEST_CHILD") == "1" {
		l, err := Open(os.Getenv("GWLOCK_TEST_DIR"), ".", true)
		if err == nil {
			err = l.TryLock()
		}
		if err == nil {
			err = l.Inherit()
		}
		if err == nil {
			err = syscall.Exec("/bin/sleep", []string{"sleep", "600"}, nil)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTheExecedProgramHoldsTheLock$")
	cmd.Env = append(os.Environ(), "GWLOCK_TEST_CHILD=1", "GWLOCK_TEST_DIR="+dir)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	l, err := Open(dir, ".", false)
	for err != nil || !l.Held() {
		if err == nil {
			l.Close()
		}
		if cmd.ProcessState != nil {
			t.Fatal("the child exited")
		}
		time.Sleep(10 * time.Millisecond) // polling the child's start
		l, err = Open(dir, ".", false)
	}
	defer l.Close()
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	assert.Check(t, is.Equal(strings.TrimSpace(string(comm)), "sleep"), "held by the exec'd program")
	assert.Check(t, is.Equal(l.TryLock(), ErrHeld))

	assert.NilError(t, cmd.Process.Kill())
	cmd.Wait()
	assert.NilError(t, l.TryLock(), "released when the program dies")
}

func TestHolderRecordIsJSON(t *testing.T) {
	h := Self("work", time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	assert.Check(t, h.Pid == os.Getpid())
	assert.Check(t, strings.HasPrefix(h.PidNS, "pid:["), h.PidNS)
	b, err := json.Marshal(h)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), `"since":"2030-01-02T03:04:05Z"`))
	assert.Check(t, is.Contains(string(b), `"profile":"work"`))
	assert.Check(t, is.Equal(Holder{}.String(), "an unknown holder (the lock file names none)"))
}

// Testing the lock (the probe, status, healthcheck: a shared lock taken and
// dropped at once, or a few milliseconds later when the tester is
// descheduled in between) never passes for a holder.
func TestTestingTheLockIsNotHoldingIt(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	defer l.Close()
	tester, err := Open(dir, ".", false)
	assert.NilError(t, err)
	defer tester.Close()
	for i := 0; i < 20; i++ {
		assert.NilError(t, unix.Flock(tester.fd, unix.LOCK_SH|unix.LOCK_NB))
		go func() {
			time.Sleep(time.Millisecond) // the tester, descheduled
			unix.Flock(tester.fd, unix.LOCK_UN)
		}()
		assert.NilError(t, l.TryLock(), "try %d", i)
		assert.NilError(t, unix.Flock(l.fd, unix.LOCK_UN))
	}
}

// `gateway run --replace` in the container of a live holder (its supervisor
// was killed; the gateway lives on, orphaned) asks it to stop, once, and
// takes over when it has.
func TestReplaceAsksALiveHolderOfThisContainerOnce(t *testing.T) {
	dir := t.TempDir()
	self := Self("default", time.Now())
	orphan := self
	orphan.Pid = 4242
	release := other(t, dir, orphan)
	l, err := Open(dir, ".", true)
	assert.NilError(t, err)
	defer l.Close()
	var asked []int
	var lines []string
	n := 0
	w := &Waiter{Lock: l, Self: self,
		Alive:   func(pid int) bool { return pid == 4242 },
		Replace: func(h Holder) bool { asked = append(asked, h.Pid); return true },
		Sleep: func(time.Duration) {
			if n++; n == 3 {
				release() // it stopped
			}
		},
		Logf: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }}
	assert.NilError(t, w.Wait())
	assert.Check(t, is.DeepEqual(asked, []int{4242}), "asked once")
	assert.Check(t, is.Contains(lines[0], "--replace: asked this container's gateway pid 4242, which holds the gateway lock"))

	// Another container's holder is never asked.
	assert.NilError(t, unix.Flock(l.fd, unix.LOCK_UN))
	release = other(t, dir, elsewhere)
	asked = nil
	n = 0
	w = &Waiter{Lock: l, Self: self, Alive: func(int) bool { return true },
		Replace: func(h Holder) bool { asked = append(asked, h.Pid); return true },
		Sleep: func(time.Duration) {
			if n++; n == 2 {
				release()
			}
		},
		Logf: func(string, ...any) {}}
	assert.NilError(t, w.Wait())
	assert.Check(t, is.Len(asked, 0))
}
