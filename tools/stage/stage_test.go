package stage

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

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

// tree lists dir as "path mode" lines, sorted.
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
		out = append(out, rel+" "+info.Mode().String())
		return nil
	})
	assert.NilError(t, err)
	sort.Strings(out)
	return out
}

// rcTree writes an s6-rc source directory like the image's.
func rcTree(t *testing.T, rcd string) {
	t.Helper()
	longrun := func(name, run string) {
		write(t, filepath.Join(rcd, name, "type"), "longrun\n", 0o644)
		write(t, filepath.Join(rcd, name, "run"), run, 0o755)
	}
	longrun("gateway-default", "#!/bin/sh\nexec gateway\n")
	write(t, filepath.Join(rcd, "gateway-default", "finish"), "#!/bin/sh\nexit 0\n", 0o755)
	write(t, filepath.Join(rcd, "gateway-default", "producer-for"), "gateway-default-log\n", 0o644)
	write(t, filepath.Join(rcd, "gateway-default", "dependencies.d", "base"), "", 0o644)
	longrun("gateway-default-log", "#!/bin/sh\nexec s6-log 1\n")
	write(t, filepath.Join(rcd, "gateway-default-log", "consumer-for"), "gateway-default\n", 0o644)
	write(t, filepath.Join(rcd, "gateway-default-log", "pipeline-name"), "gateway-default-pipeline\n", 0o644)

	longrun("dashboard", "#!/bin/sh\nexec dashboard\n")
	write(t, filepath.Join(rcd, "dashboard", "producer-for"), "dashboard-log\n", 0o644)
	longrun("dashboard-log", "#!/bin/sh\nexec s6-log 1\n")
	write(t, filepath.Join(rcd, "dashboard-log", "consumer-for"), "dashboard\n", 0o644)

	longrun("main-hermes", "#!/bin/sh\nexec watch\n")
	write(t, filepath.Join(rcd, "main-hermes", "data", "note"), "kept", 0o600)
	assert.NilError(t, os.Symlink("/etc/hostname", filepath.Join(rcd, "main-hermes", "link")))

	write(t, filepath.Join(rcd, "init-setup", "type"), "oneshot\n", 0o644)
	write(t, filepath.Join(rcd, "init-setup", "up"), "hermes-setup\n", 0o644)
	write(t, filepath.Join(rcd, "base", "type"), "bundle\n", 0o644)
	write(t, filepath.Join(rcd, "notes.txt"), "not a service\n", 0o644)
}

func TestLayServices(t *testing.T) {
	root := t.TempDir()
	rcd, scan := filepath.Join(root, "s6-rc.d"), filepath.Join(root, "service")
	rcTree(t, rcd)
	write(t, filepath.Join(rcd, "user", "type"), "bundle\n", 0o644)
	write(t, filepath.Join(rcd, "user", "contents.d", "gateway-default"), "", 0o644)
	write(t, filepath.Join(rcd, "user", "contents.d", "main-hermes"), "", 0o644)

	assert.NilError(t, LayServices(rcd, scan))
	assert.Check(t, is.DeepEqual(tree(t, scan), []string{
		"dashboard drwxr-xr-x",
		"dashboard/down -rw-r--r--", // not in the user bundle
		"dashboard/log drwxr-xr-x",
		"dashboard/log/run -rwxr-xr-x",
		"dashboard/log/type -rw-r--r--",
		"dashboard/run -rwxr-xr-x",
		"dashboard/type -rw-r--r--",
		"gateway-default drwxr-xr-x",
		"gateway-default/finish -rwxr-xr-x",
		"gateway-default/log drwxr-xr-x",
		"gateway-default/log/run -rwxr-xr-x",
		"gateway-default/log/type -rw-r--r--",
		"gateway-default/run -rwxr-xr-x",
		"gateway-default/type -rw-r--r--",
		"main-hermes drwxr-xr-x",
		"main-hermes/data drwxr-xr-x",
		"main-hermes/data/note -rw-------",
		"main-hermes/run -rwxr-xr-x",
		"main-hermes/type -rw-r--r--",
	}))
	assert.Check(t, is.Equal(read(t, filepath.Join(scan, "gateway-default", "log", "run")), "#!/bin/sh\nexec s6-log 1\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(scan, "main-hermes", "data", "note")), "kept"))
}

func TestLayServicesWithUserBundlesD(t *testing.T) {
	// s6-overlay 3.2.3.2 moved the user bundle to user-bundles.d/user.
	root := t.TempDir()
	rcd, scan := filepath.Join(root, "s6-rc.d"), filepath.Join(root, "service")
	rcTree(t, rcd)
	write(t, filepath.Join(root, "user-bundles.d", "user", "contents.d", "dashboard"), "", 0o644)

	assert.NilError(t, LayServices(rcd, scan))
	for name, down := range map[string]bool{"dashboard": false, "gateway-default": true, "main-hermes": true} {
		_, err := os.Stat(filepath.Join(scan, name, "down"))
		assert.Check(t, is.Equal(err == nil, down), "%s down", name)
	}
}

func TestLayServicesErrors(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, LayServices(filepath.Join(root, "missing"), filepath.Join(root, "service")), "no s6-rc.d: nothing to lay")

	write(t, filepath.Join(root, "file"), "", 0o644)
	assert.Check(t, LayServices(filepath.Join(root, "file"), filepath.Join(root, "service")) != nil)

	rcd := filepath.Join(root, "s6-rc.d")
	write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
	write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
	err := LayServices(rcd, filepath.Join(root, "service"))
	assert.Check(t, is.ErrorContains(err, "laying svc/log: "), "the logger named by producer-for is missing")

	write(t, filepath.Join(root, "blocked", "svc"), "a file where the service goes", 0o644)
	err = LayServices(rcd, filepath.Join(root, "blocked"))
	assert.Check(t, is.ErrorContains(err, "laying svc: "))

	assert.NilError(t, os.Remove(filepath.Join(rcd, "svc", "producer-for")))
	scan := filepath.Join(root, "service2")
	assert.NilError(t, os.MkdirAll(filepath.Join(scan, "svc", "down"), 0o755))
	assert.Check(t, LayServices(rcd, scan) != nil, "the down marker cannot be written")
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

func TestScrubbedEnv(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("S6_VERBOSITY", "2")
	t.Setenv("HERMES_SECRET", "x")
	env := scrubbedEnv()
	assert.Check(t, is.Equal(env[0], "PATH=/command:/usr/bin:/bin"))
	assert.Check(t, is.Contains(env, "S6_VERBOSITY=2"))
	for _, kv := range env[1:] {
		assert.Check(t, strings.HasPrefix(kv, "S6_"), "only S6_* settings pass: %s", kv)
	}
	t.Setenv("PATH", "")
	assert.Check(t, is.Equal(scrubbedEnv()[0], "PATH="+BasePath))
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

func TestWaitUserBundle(t *testing.T) {
	scan := t.TempDir()
	for _, d := range []string{"gateway-default", "main-hermes", "dashboard", ".s6-svscan"} {
		assert.NilError(t, os.Mkdir(filepath.Join(scan, d), 0o755))
	}
	write(t, filepath.Join(scan, "dashboard", "down"), "", 0o644)

	bin, calls := fakeBin(t, map[string]int{"s6-svwait": 0})
	log := captureStderr(t, func() { waitUserBundle(Paths{BinDir: bin, ScanDir: scan}) })
	assert.Check(t, is.Equal(log, ""))
	assert.Check(t, is.Equal(read(t, calls), "s6-svwait -a -u -t 5000 "+filepath.Join(scan, "gateway-default")+" "+filepath.Join(scan, "main-hermes")+"\n"))

	bin, _ = fakeBin(t, map[string]int{"s6-svwait": 1})
	log = captureStderr(t, func() { waitUserBundle(Paths{BinDir: bin, ScanDir: scan}) })
	assert.Check(t, is.Equal(log, "s6-stage: stage2: user bundle not up within 5s: exit status 1\n"))

	empty := t.TempDir()
	bin, calls = fakeBin(t, map[string]int{"s6-svwait": 0})
	waitUserBundle(Paths{BinDir: bin, ScanDir: empty})
	_, err := os.Stat(calls)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "nothing to wait for")
}

// testPaths are the stage layer's paths under a temporary root.
func testPaths(t *testing.T, bin string) Paths {
	root := t.TempDir()
	return Paths{
		ScanDir:    filepath.Join(root, "run/service"),
		EnvDir:     filepath.Join(root, "run/s6/container_environment"),
		WorkdirF:   filepath.Join(root, "run/s6/workdir"),
		ExitCodeF:  filepath.Join(root, "run/s6-linux-init-container-results/exitcode"),
		RcInit:     filepath.Join(root, "run/s6/basedir/scripts/rc.init"),
		RcD:        filepath.Join(root, "etc/s6-overlay/s6-rc.d"),
		ContInit:   filepath.Join(root, "etc/cont-init.d"),
		ContFinish: filepath.Join(root, "etc/cont-finish.d"),
		Self:       filepath.Join(root, "usr/local/bin/hermes-s6"),
		BinDir:     bin,
	}
}

func TestInitPreparesRunAndStartsStage2(t *testing.T) {
	p := testPaths(t, t.TempDir()) // no s6-svscan there: the final exec fails
	out := filepath.Join(t.TempDir(), "stage2")
	// The stand-in for this binary records how stage 2 was started.
	write(t, p.Self, "#!/bin/sh\necho $$ > "+out+".pid\necho \"$0 $*\" > "+out+".args\nenv > "+out+".env\n", 0o755)
	rcTree(t, p.RcD)
	write(t, filepath.Join(p.ScanDir, "stale", "run"), "from the last boot", 0o755)
	t.Setenv("S6_KEEP_ENV", "")
	t.Setenv("S6_KILL_GRACETIME", "200")
	t.Setenv("HERMES_TEST_VALUE", "a b\nc")
	wd, err := os.Getwd()
	assert.NilError(t, err)

	err = Init(p, []string{"hermes", "gateway", "run"})
	assert.Check(t, is.ErrorContains(err, "no such file or directory"), "becoming s6-svscan fails without it")

	assert.Check(t, is.Equal(read(t, p.WorkdirF), wd))
	assert.Check(t, is.Equal(read(t, p.ExitCodeF), "0"))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.EnvDir, "HERMES_TEST_VALUE")), "a b\nc"))
	target, err := os.Readlink(p.RcInit)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(target, p.Self))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.ScanDir, ".s6-svscan", "finish")), "#!/bin/sh\nexec "+p.Self+" stage3\n"))
	_, err = os.Stat(filepath.Join(p.ScanDir, "stale"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "a restarted container starts clean")
	_, err = os.Stat(filepath.Join(p.ScanDir, "dashboard", "run"))
	assert.Check(t, err, "the services are laid")

	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if b, err := os.ReadFile(out + ".env"); err == nil && strings.Contains(string(b), "PATH=") {
			return poll.Success()
		}
		return poll.Continue("stage 2 has not run")
	}, pollOpts...)
	assert.Check(t, is.Equal(read(t, out+".args"), p.RcInit+" top hermes gateway run\n"))
	env := strings.Split(strings.TrimSpace(read(t, out+".env")), "\n")
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH":
			assert.Check(t, strings.HasPrefix(kv, "PATH=/command:"), kv)
		case strings.HasPrefix(name, "S6_"), name == "PWD", name == "SHLVL", name == "_", name == "OLDPWD":
		default:
			t.Errorf("stage 2 must get a scrubbed environment, got %q", kv)
		}
	}
	assert.Check(t, is.Contains(env, "S6_KILL_GRACETIME=200"))

	// The stage 2 child exited; reap collects it.
	pid := strings.TrimSpace(read(t, out+".pid"))
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		reap()
		if _, err := os.Stat("/proc/" + pid); err != nil {
			return poll.Success()
		}
		return poll.Continue("stage 2 (pid %s) not reaped", pid)
	}, pollOpts...)
}

func TestInitKeepsTheEnvironmentWithS6KeepEnv(t *testing.T) {
	p := testPaths(t, t.TempDir())
	write(t, p.Self, "", 0o755)
	assert.NilError(t, os.Remove(p.Self))
	assert.NilError(t, os.Symlink("/bin/true", p.Self))
	t.Setenv("S6_KEEP_ENV", "1")
	assert.Check(t, Init(p, nil) != nil)
	_, err := os.Stat(p.EnvDir)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "nothing dumped")
}

func TestInitStopsWhenRunIsUnusable(t *testing.T) {
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
