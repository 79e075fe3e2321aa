package stage

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/contenv"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

var pollOpts = []poll.SettingOp{poll.WithTimeout(15 * time.Second), poll.WithDelay(10 * time.Millisecond)}

// captureStderr runs f with os.Stderr (the stage layer's log) sent to a file
// and returns what was written.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	assert.NilError(t, err)
	old := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = old }()
	f()
	b, err := os.ReadFile(tmp.Name())
	assert.NilError(t, err)
	return string(b)
}

func write(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	assert.NilError(t, os.WriteFile(p, []byte(data), mode))
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	return string(b)
}

// tree lists dir as "path mode" lines, sorted; a symlink also shows its
// target ("link Lrwxrwxrwx -> target"). Symlinks are not followed.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + info.Mode().String()
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	assert.NilError(t, err)
	sort.Strings(out)
	return out
}

// rcTree writes an s6-rc source directory like the image's: main-hermes (in
// the user bundle) and hermes-admin (with a notification-fd), no logger;
// and, for the generic case, a gateway whose logger is its own longrun
// (s6-rc's producer-for / consumer-for), a oneshot, and a stray file.
func rcTree(t *testing.T, rcd string) {
	t.Helper()
	longrun := func(name, run string) {
		write(t, filepath.Join(rcd, name, "type"), "longrun\n", 0o644)
		write(t, filepath.Join(rcd, name, "run"), run, 0o755)
	}
	longrun("main-hermes", "#!/bin/sh\nexec watch\n")
	write(t, filepath.Join(rcd, "main-hermes", "dependencies.d", "base"), "", 0o644)
	write(t, filepath.Join(rcd, "main-hermes", "data", "note"), "kept", 0o600)
	assert.NilError(t, os.Symlink("note", filepath.Join(rcd, "main-hermes", "data", "link")))
	assert.NilError(t, os.Symlink("/etc/hostname", filepath.Join(rcd, "main-hermes", "link")))
	write(t, filepath.Join(rcd, "main-hermes", "timeout-up"), "4000\n", 0o644)

	longrun("hermes-admin", "#!/bin/sh\nexec admin\n")
	write(t, filepath.Join(rcd, "hermes-admin", "notification-fd"), "3", 0o644)
	write(t, filepath.Join(rcd, "hermes-admin", "dependencies.d", "base"), "", 0o644)

	longrun("gateway-default", "#!/bin/sh\nexec gateway\n")
	write(t, filepath.Join(rcd, "gateway-default", "finish"), "#!/bin/sh\nexit 0\n", 0o755)
	write(t, filepath.Join(rcd, "gateway-default", "producer-for"), "gateway-default-log\n", 0o644)
	write(t, filepath.Join(rcd, "gateway-default", "dependencies.d", "base"), "", 0o644)
	write(t, filepath.Join(rcd, "gateway-default", "down-signal"), "SIGINT\n", 0o644)
	longrun("gateway-default-log", "#!/bin/sh\nexec s6-log 1\n")
	write(t, filepath.Join(rcd, "gateway-default-log", "consumer-for"), "gateway-default\n", 0o644)
	write(t, filepath.Join(rcd, "gateway-default-log", "pipeline-name"), "gateway-default-pipeline\n", 0o644)
	write(t, filepath.Join(rcd, "gateway-default-log", "notification-fd"), "03\n", 0o644)

	write(t, filepath.Join(rcd, "init-setup", "type"), "oneshot\n", 0o644)
	write(t, filepath.Join(rcd, "init-setup", "up"), "hermes-setup\n", 0o644)
	write(t, filepath.Join(rcd, "user", "type"), "bundle\n", 0o644)
	write(t, filepath.Join(rcd, "user", "contents.d", ".empty"), "", 0o644)
	write(t, filepath.Join(rcd, "notes.txt"), "not a service\n", 0o644)
}

func TestRunDirRunsExecutablesInOrder(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "order")
	script := func(name, body string, mode os.FileMode) {
		write(t, filepath.Join(dir, name), "#!/bin/sh\necho "+name+" >> "+out+"\n"+body, mode)
	}
	script("10-b", "", 0o755)
	script("02-a", "exit 3\n", 0o755)
	script("20-c", "", 0o755)
	script("15-not-executable", "", 0o644)
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "05-dir"), 0o755))
	write(t, filepath.Join(dir, "12-no-interpreter"), "\x7fELF garbage", 0o755)

	log := captureStderr(t, func() { runDir(dir, "cont-init", 0) })
	assert.Check(t, is.Equal(read(t, out), "02-a\n10-b\n20-c\n"))
	assert.Check(t, is.Contains(log, "s6-stage: cont-init: "+filepath.Join(dir, "02-a")+" exited: exit status 3\n"))
	assert.Check(t, is.Contains(log, "s6-stage: cont-init: "+filepath.Join(dir, "12-no-interpreter")+": "))
}

func TestRunDirKillsWhatTakesTooLong(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "ran")
	write(t, filepath.Join(dir, "00-slow"), "#!/bin/sh\nexec sleep 30\n", 0o755)
	write(t, filepath.Join(dir, "01-next"), "#!/bin/sh\necho next > "+out+"\n", 0o755)
	start := time.Now()
	log := captureStderr(t, func() { runDir(dir, "cont-finish", 200*time.Millisecond) })
	assert.Check(t, time.Since(start) < 10*time.Second, "took %s", time.Since(start))
	assert.Check(t, is.Contains(log, "s6-stage: cont-finish: "+filepath.Join(dir, "00-slow")+" took longer than 200ms: killed\n"))
	assert.Check(t, is.Equal(read(t, out), "next\n"), "the next one still runs")
}

func TestRunDirWithoutDir(t *testing.T) {
	log := captureStderr(t, func() { runDir(filepath.Join(t.TempDir(), "missing"), "cont-init", 0) })
	assert.Check(t, is.Equal(log, ""))
}

func TestEnvValueAndMsEnv(t *testing.T) {
	dir := t.TempDir()
	p := Paths{EnvDir: dir}
	write(t, filepath.Join(dir, "S6_KILL_GRACETIME"), "200\n", 0o644)
	write(t, filepath.Join(dir, "S6_KILL_FINISH_MAXTIME"), "soon", 0o644)
	write(t, filepath.Join(dir, "S6_TEST_NEGATIVE"), "-5", 0o644)
	t.Setenv("S6_TEST_FROM_PROCESS", "7")
	write(t, filepath.Join(dir, "S6_TEST_FROM_PROCESS"), "8", 0o644)

	assert.Check(t, is.Equal(envValue(dir, "S6_KILL_GRACETIME"), "200"))
	assert.Check(t, is.Equal(envValue(dir, "S6_TEST_FROM_PROCESS"), "7"), "the process environment wins")
	assert.Check(t, is.Equal(envValue(dir, "S6_TEST_MISSING"), ""))
	assert.Check(t, is.Equal(msEnv(p, "S6_KILL_GRACETIME", 3000), 200*time.Millisecond))
	assert.Check(t, is.Equal(msEnv(p, "S6_KILL_FINISH_MAXTIME", 5000), 5*time.Second))
	assert.Check(t, is.Equal(msEnv(p, "S6_TEST_NEGATIVE", 3000), 3*time.Second))
	assert.Check(t, is.Equal(msEnv(p, "S6_TEST_MISSING", 3000), 3*time.Second))
}

// fakeBin writes stand-ins for the s6 programs the stage layer calls: each
// records its arguments in calls and exits with the code given.
func fakeBin(t *testing.T, codes map[string]int) (bin, calls string) {
	t.Helper()
	bin = t.TempDir()
	calls = filepath.Join(t.TempDir(), "calls")
	for name, code := range codes {
		write(t, filepath.Join(bin, name), "#!/bin/sh\necho \""+name+" $*\" >> "+calls+"\nexit "+strconv.Itoa(code)+"\n", 0o755)
	}
	return bin, calls
}

func TestWaitSvscan(t *testing.T) {
	scan := t.TempDir()
	err := waitSvscan(Paths{ScanDir: scan}, 50*time.Millisecond)
	assert.Check(t, is.ErrorContains(err, "s6-svscan did not start on "+scan))
	listenControl(t, scan)
	assert.NilError(t, waitSvscan(Paths{ScanDir: scan}, 5*time.Second))
}

// testPaths are the stage layer's paths under a temporary root.
func testPaths(t *testing.T, bin string) Paths {
	root := t.TempDir()
	return Paths{
		Run:        filepath.Join(root, "run"),
		ScanDir:    filepath.Join(root, "run/service"),
		EnvDir:     filepath.Join(root, "run/s6/container_environment"),
		WorkdirF:   filepath.Join(root, "run/s6/workdir"),
		ExitCodeF:  filepath.Join(root, "run/s6-linux-init-container-results/exitcode"),
		RcInit:     filepath.Join(root, "run/s6/basedir/scripts/rc.init"),
		DB:         filepath.Join(root, "run/s6/db"),
		LiveDir:    filepath.Join(root, "run/s6-rc"),
		RcD:        filepath.Join(root, "etc/s6-overlay/s6-rc.d"),
		ContInit:   filepath.Join(root, "etc/cont-init.d"),
		ContFinish: filepath.Join(root, "etc/cont-finish.d"),
		Self:       filepath.Join(root, "usr/local/bin/hermes-s6"),
		BinDir:     bin,
	}
}

// asPID1 makes Init believe it is PID 1 for the rest of the test.
func asPID1(t *testing.T) {
	t.Helper()
	old := getpid
	getpid = func() int { return 1 }
	t.Cleanup(func() { getpid = old })
}

// asUID makes Init believe its effective uid is uid for the rest of the test.
func asUID(t *testing.T, uid int) {
	t.Helper()
	old := geteuid
	geteuid = func() int { return uid }
	t.Cleanup(func() { geteuid = old })
}

// stage2Env runs Init with a stand-in for this binary that records how
// stage 2 was started, and returns stage 2's arguments and environment.
func stage2Env(t *testing.T, p Paths, cmd ...string) (args string, env []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stage2")
	write(t, p.Self, "#!/bin/sh\necho $$ > "+out+".pid\necho \"$0 $*\" > "+out+".args\nenv > "+out+".env\n", 0o755)
	err := Init(p, cmd)
	assert.Check(t, is.ErrorContains(err, "no such file or directory"), "becoming s6-svscan fails without it")
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if b, err := os.ReadFile(out + ".env"); err == nil && strings.Contains(string(b), "PATH=") {
			return poll.Success()
		}
		return poll.Continue("stage 2 has not run")
	}, pollOpts...)
	// The stage 2 child exited; reap collects it.
	pid := strings.TrimSpace(read(t, out+".pid"))
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		reap()
		if _, err := os.Stat("/proc/" + pid); err != nil {
			return poll.Success()
		}
		return poll.Continue("stage 2 (pid %s) not reaped", pid)
	}, pollOpts...)
	for _, kv := range strings.Split(strings.TrimSpace(read(t, out+".env")), "\n") {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PWD", "SHLVL", "_", "OLDPWD": // the stand-in's shell
		default:
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	return read(t, out+".args"), env
}

func TestInitPreparesRunAndStartsStage2(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir()) // no s6-svscan there: the final exec fails
	rcTree(t, p.RcD)
	write(t, filepath.Join(p.ScanDir, "stale", "run"), "from the last boot", 0o755)
	t.Setenv("S6_KEEP_ENV", "")
	t.Setenv("S6_KILL_GRACETIME", "200")
	t.Setenv("HERMES_TEST_VALUE", "a b\nc")
	t.Setenv("PATH", os.Getenv("PATH")+":/command")
	wd, err := os.Getwd()
	assert.NilError(t, err)

	args, env := stage2Env(t, p, "hermes", "gateway", "run")

	assert.Check(t, is.Equal(args, p.RcInit+" top hermes gateway run\n"))
	// s6-linux-init -p: stage 2 and s6-svscan get PATH alone, even S6_*
	// settings are read from the container environment.
	assert.Check(t, is.DeepEqual(env, []string{"PATH=" + os.Getenv("PATH")}))
	assert.Check(t, is.Equal(read(t, p.WorkdirF), wd))
	assert.Check(t, is.Equal(read(t, p.ExitCodeF), "0"))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.EnvDir, "HERMES_TEST_VALUE")), "a b\nc"))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.EnvDir, "S6_KILL_GRACETIME")), "200"))
	target, err := os.Readlink(p.RcInit)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(target, p.Self))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.ScanDir, ".s6-svscan", "finish")), "#!/bin/sh\nexec "+p.Self+" stage3\n"))
	_, err = os.Stat(filepath.Join(p.ScanDir, "stale"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "a restarted container starts clean")
	target, err = os.Readlink(filepath.Join(p.ScanDir, "main-hermes"))
	assert.Check(t, err, "the services are laid")
	assert.Check(t, is.Equal(target, filepath.Join(p.LiveDir, "servicedirs", "main-hermes")))
}

func TestInitDumpsTheEnvironmentWithInitsPath(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	t.Setenv("S6_KEEP_ENV", "0")
	t.Setenv("PATH", "/usr/local/bin:/usr/bin")
	_, env := stage2Env(t, p)
	want := "/command:/bin:/usr/local/bin:/usr/bin"
	assert.Check(t, is.DeepEqual(env, []string{"PATH=" + want}))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.EnvDir, "PATH")), want), "s6-linux-init dumps what /init exported")
	assert.Check(t, is.Equal(read(t, filepath.Join(p.EnvDir, "S6_KEEP_ENV")), "0"))
}

func TestInitKeepsTheEnvironmentWithS6KeepEnv(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	t.Setenv("S6_KEEP_ENV", "1")
	t.Setenv("HERMES_TEST_VALUE", "kept")
	t.Setenv("PATH", "/usr/bin:/bin")

	_, env := stage2Env(t, p)

	// stage0 dumps the environment into s6-linux-init's basedir/env, which
	// it gives to stage 2 and s6-svscan: everything passes, PATH as /init
	// made it; no container_environment is written.
	assert.Check(t, is.Contains(env, "HERMES_TEST_VALUE=kept"))
	assert.Check(t, is.Contains(env, "S6_KEEP_ENV=1"))
	assert.Check(t, is.Contains(env, "PATH=/command:/usr/bin:/bin"))
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PATH", "PWD", "SHLVL", "_", "OLDPWD":
		default:
			assert.Check(t, is.Contains(env, kv))
		}
	}
	_, err := os.Stat(p.EnvDir)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "nothing dumped")
}

func TestKeepEnvAgreesWithContenv(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "FROM_DIR"), "1", 0o644)
	for _, v := range []string{"", "0", "1", "yes", "00"} {
		environ := []string{"S6_KEEP_ENV=" + v, "HERE=1"}
		kept := contenv.Environ(environ, dir)[0] == environ[0]
		assert.Check(t, is.Equal(keepEnv(environ), kept), "S6_KEEP_ENV=%q", v)
	}
	assert.Check(t, !keepEnv([]string{"HERE=1"}))
}

func TestInitPath(t *testing.T) {
	for in, want := range map[string]string{
		"":               "/command:/usr/bin:/bin",
		"/usr/local/bin": "/command:/usr/bin:/bin:/usr/local/bin",
		"/usr/bin:/bin":  "/command:/usr/bin:/bin",
		"/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin": "/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	} {
		assert.Check(t, is.Equal(initPath(in), want), "PATH=%q", in)
	}
}

func TestInitRefusesUnlessPID1(t *testing.T) {
	// The test binary is not PID 1: like s6-overlay-suexec, Init refuses
	// before it touches anything.
	p := testPaths(t, t.TempDir())
	rcTree(t, p.RcD)
	assert.NilError(t, os.MkdirAll(p.Run, 0o755))
	assert.NilError(t, os.Chmod(p.Run, os.ModeSticky|0o777))

	var code int
	log := captureStderr(t, func() { code = InitMain(p, []string{"true"}) })
	assert.Check(t, is.Equal(code, 100))
	assert.Check(t, is.Equal(log, "s6-stage: fatal: can only run as pid 1\n"))
	assert.Check(t, is.ErrorIs(Init(p, nil), ErrNotPID1))
	assert.Check(t, is.DeepEqual(tree(t, p.Run), []string(nil)), "nothing laid in /run")
	st, err := os.Stat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().String(), "dtrwxrwxrwx"), "/run untouched")
}

func TestInitMakesRunRootOwned0755WhenRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	asPID1(t)
	p := testPaths(t, t.TempDir())
	assert.NilError(t, os.MkdirAll(p.Run, 0o755))
	assert.NilError(t, os.Chmod(p.Run, os.ModeSticky|0o777))
	assert.NilError(t, os.Chown(p.Run, 10000, 10000))
	// A symlink planted by an unprivileged user during the last boot.
	assert.NilError(t, os.Symlink("/etc", p.LiveDir))

	stage2Env(t, p)

	st, err := os.Lstat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().String(), "drwxr-xr-x"))
	assert.Check(t, is.Equal(st.Sys().(*syscall.Stat_t).Uid, uint32(0)))
	assert.Check(t, is.Equal(st.Sys().(*syscall.Stat_t).Gid, uint32(0)))
	target, err := os.Readlink(p.LiveDir)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(target, "s6-rc:s6-rc-init:"), "the planted link is replaced, not followed")

	// A missing /run is made as preinit makes it.
	p = testPaths(t, t.TempDir())
	stage2Env(t, p)
	st, err = os.Lstat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().String(), "drwxr-xr-x"))
}

func TestInitLeavesRunAloneUnlessRoot(t *testing.T) {
	asPID1(t)
	asUID(t, 10000)
	p := testPaths(t, t.TempDir())
	assert.NilError(t, os.MkdirAll(p.Run, 0o755))
	assert.NilError(t, os.Chmod(p.Run, os.ModeSticky|0o777))
	stage2Env(t, p)
	st, err := os.Lstat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().String(), "dtrwxrwxrwx"))
}

func TestInitRefusesARunThatIsNotADirectory(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	write(t, filepath.Join(filepath.Dir(p.Run), "elsewhere"), "", 0o644)
	assert.NilError(t, os.Symlink("elsewhere", p.Run))
	assert.Check(t, is.ErrorContains(Init(p, nil), "stage1: "+p.Run+" is not a directory"))
}

func TestInitCleansWhatAPreviousBootLeft(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	old := p.LiveDir + ":s6-rc-init:oldOld"
	write(t, filepath.Join(old, "servicedirs", "gone", "run"), "", 0o755)
	assert.NilError(t, os.Symlink(filepath.Base(old), p.LiveDir))
	write(t, filepath.Join(p.DB, "servicedirs", "gone", "run"), "", 0o755)
	write(t, filepath.Join(p.EnvDir, "STALE"), "1", 0o644)
	stage2Env(t, p)
	for _, gone := range []string{old, filepath.Join(p.DB, "servicedirs", "gone"), filepath.Join(p.EnvDir, "STALE")} {
		_, err := os.Lstat(gone)
		assert.Check(t, is.ErrorIs(err, os.ErrNotExist), gone)
	}
}

func TestInitStopsWhenRunIsUnusable(t *testing.T) {
	asPID1(t)
	p := testPaths(t, t.TempDir())
	write(t, filepath.Join(filepath.Dir(p.ScanDir), "file"), "", 0o644)
	p.ScanDir = filepath.Join(filepath.Dir(p.ScanDir), "file", "service")
	err := Init(p, nil)
	assert.Check(t, is.ErrorContains(err, "not a directory"))
	_, err = os.Stat(p.WorkdirF)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "nothing else is prepared")
}

func TestOthersAlive(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	assert.NilError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	assert.Check(t, othersAlive(), "a child is alive")
}
