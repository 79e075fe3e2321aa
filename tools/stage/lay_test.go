package stage

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// lay writes the image-like s6-rc source with main-hermes in the user
// bundle and lays it.
func lay(t *testing.T) Paths {
	t.Helper()
	p := testPaths(t, "/command")
	rcTree(t, p.RcD)
	write(t, filepath.Join(p.RcD, "user", "contents.d", "main-hermes"), "", 0o644)
	assert.NilError(t, LayServices(p))
	return p
}

// s6rcServices are the s6-rc services laid from rcTree: s6-rc-compile's two
// internal longruns and every longrun of the source, loggers included.
var s6rcServices = []string{"gateway-default", "gateway-default-log", "hermes-admin", "main-hermes", FDHolder, OneshotRunner}

func TestLayServicesLinksLiveDirectoriesIntoTheScanDir(t *testing.T) {
	p := lay(t)

	// s6-rc-init: /run/s6-rc → s6-rc:s6-rc-init:XXXXXX, a relative symlink.
	target, err := os.Readlink(p.LiveDir)
	assert.NilError(t, err)
	assert.Check(t, is.Regexp(`^s6-rc:s6-rc-init:[A-Za-z0-9]{6}$`, target))
	live := filepath.Join(filepath.Dir(p.LiveDir), target)
	assert.Check(t, is.DeepEqual(tree(t, live)[:5], []string{
		"compiled Lrwxrwxrwx -> " + p.DB,
		"lock -rw-r--r--",
		"prefix -rw-r--r--",
		"scandir Lrwxrwxrwx -> " + p.ScanDir,
		"servicedirs drwxr-xr-x",
	}))
	st, err := os.Stat(live)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().String(), "drwxr-xr-x"))

	// The scan directory: one symlink per s6-rc longrun, through /run/s6-rc,
	// and s6-linux-init's shutdownd as a plain directory.
	var want []string
	for _, n := range s6rcServices {
		want = append(want, n+" Lrwxrwxrwx -> "+filepath.Join(p.LiveDir, "servicedirs", n))
	}
	want = append(want, Shutdownd+" drwxr-xr-x", Shutdownd+"/fifo prw-------", Shutdownd+"/notification-fd -rw-r--r--", Shutdownd+"/run -rwxr-xr-x")
	sort.Strings(want)
	assert.Check(t, is.DeepEqual(tree(t, p.ScanDir), want))
	for _, n := range s6rcServices {
		st, err := os.Stat(filepath.Join(p.ScanDir, n))
		assert.Check(t, err == nil && st.IsDir(), "%s leads to its live directory", n)
	}
}

func TestLayServicesLaysLongrunsAsS6RcCompileWritesThem(t *testing.T) {
	p := lay(t)
	// Only what s6-supervise reads is compiled: no type, dependencies.d,
	// producer-for, consumer-for, pipeline-name, timeout-up, stray files.
	compiled := tree(t, filepath.Join(p.DB, "servicedirs"))
	var users []string
	for _, l := range compiled {
		if !strings.HasPrefix(l, "s6rc-") {
			users = append(users, l)
		}
	}
	assert.Check(t, is.DeepEqual(users, []string{
		"gateway-default drwxr-xr-x",
		"gateway-default-log drwxr-xr-x",
		"gateway-default-log/notification-fd -rw-r--r--",
		"gateway-default-log/run -rwxr-xr-x",
		"gateway-default-log/run.user -rwxr-xr-x",
		"gateway-default/down-signal -rw-r--r--",
		"gateway-default/finish -rwxr-xr-x",
		"gateway-default/finish.user -rwxr-xr-x",
		"gateway-default/run -rwxr-xr-x",
		"gateway-default/run.user -rwxr-xr-x",
		"hermes-admin drwxr-xr-x",
		"hermes-admin/notification-fd -rw-r--r--",
		"hermes-admin/run -rwxr-xr-x",
		"main-hermes drwxr-xr-x",
		"main-hermes/data drwxr-xr-x",
		"main-hermes/data/link Lrwxrwxrwx -> note",
		"main-hermes/data/note -rw-------",
		"main-hermes/run -rwxr-xr-x",
	}))
	sd := filepath.Join(p.DB, "servicedirs")
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "main-hermes", "run")), "#!/bin/sh\nexec watch\n"), "not in a pipeline: run is the original")
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "main-hermes", "data", "note")), "kept"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "hermes-admin", "notification-fd")), "3\n"), "copy_uint: a number and a newline")
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default-log", "notification-fd")), "3\n"))

	// s6-rc-init copies the compiled directories into the live directory
	// and adds a down file and an event fifodir to each.
	live := filepath.Join(p.LiveDir, "servicedirs")
	want := append([]string(nil), compiled...)
	for _, n := range s6rcServices {
		want = append(want, n+"/down -rw-r--r--", n+"/event dgtrwx-wx---")
	}
	sort.Strings(want)
	got := tree(t, live+"/")
	assert.Check(t, is.DeepEqual(got, want))
	st, err := os.Stat(filepath.Join(live, "main-hermes", "event"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(int(st.Sys().(*syscall.Stat_t).Gid), os.Getegid()), "event/ belongs to the egid (ftrigw_fifodir_make)")
}

func TestLayServicesLaysALoggerAsItsOwnEntryJoinedThroughTheFDHolder(t *testing.T) {
	p := lay(t)
	_, err := os.Lstat(filepath.Join(p.ScanDir, "gateway-default", "log"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "no NAME/log: the logger is NAME-log")
	st, err := os.Lstat(filepath.Join(p.ScanDir, "gateway-default-log"))
	assert.NilError(t, err)
	assert.Check(t, st.Mode()&os.ModeSymlink != 0)

	// s6-rc-compile.c, write_exe_wrapper: the originals become run.user and
	// finish.user; run and finish get the pipe from s6rc-fdholder.
	sd := filepath.Join(p.LiveDir, "servicedirs")
	producer := "#!/command/execlineb -S0\n" +
		"fdmove 1 0\n" +
		"/command/s6-fdholder-retrieve ../s6rc-fdholder/s \"pipe:s6rc-w-gateway-default-log\"\n" +
		"fdswap 0 1\n"
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default", "run")), producer+"./run.user $@\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default", "finish")), producer+"./finish.user $@\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default", "run.user")), "#!/bin/sh\nexec gateway\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default", "finish.user")), "#!/bin/sh\nexit 0\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default-log", "run")), "#!/command/execlineb -S0\n"+
		"/command/s6-fdholder-retrieve ../s6rc-fdholder/s \"pipe:s6rc-r-gateway-default-log\"\n"+
		"./run.user $@\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, "gateway-default-log", "run.user")), "#!/bin/sh\nexec s6-log 1\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, FDHolder, "data", "autofilled")), "gateway-default-log\n"), "one pipe per consumer")
}

func TestLayServicesLaysS6OverlaysInternalServices(t *testing.T) {
	p := lay(t)
	sd := filepath.Join(p.LiveDir, "servicedirs")
	skel := func(name string) []string {
		return []string{
			name + "/data drwxr-xr-x",
			name + "/data/rules drwxr-xr-x",
			name + "/data/rules/gid drwxr-xr-x",
			name + "/data/rules/gid/0 drwxr-xr-x",
			name + "/data/rules/gid/0/allow -rw-r--r--",
			name + "/data/rules/uid drwxr-xr-x",
			name + "/data/rules/uid/0 drwxr-xr-x",
			name + "/data/rules/uid/0/allow -rw-r--r--",
			name + "/data/rules/uid/self Lrwxrwxrwx -> 0",
		}
	}
	internal := func(name string) []string {
		var out []string
		for _, l := range tree(t, sd) {
			if strings.HasPrefix(l, name+"/") {
				out = append(out, l)
			}
		}
		return out
	}
	// s6-rc-compile.c, make_skel and write_oneshot_runner.
	want := append(skel(OneshotRunner), OneshotRunner+"/down -rw-r--r--", OneshotRunner+"/event dgtrwx-wx---", OneshotRunner+"/notification-fd -rw-r--r--", OneshotRunner+"/run -rwxr-xr-x")
	assert.Check(t, is.DeepEqual(internal(OneshotRunner), want))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, OneshotRunner, "notification-fd")), "3\n"))
	runner := read(t, filepath.Join(sd, OneshotRunner, "run"))
	assert.Check(t, strings.HasPrefix(runner, "#!/command/execlineb -P\n# Laid by the hermes-s6 debian stage layer in the place of s6-rc's\n"))
	assert.Check(t, is.Contains(runner, "\nfdmove -c 2 1\nfdmove 1 3\n"+
		"/command/s6-ipcserver-socketbinder -- s\n"+
		"/command/s6-ipcserverd -1 --\n"+
		"/command/s6-ipcserver-access -v0 -E -l0 -i data/rules --\n"+
		"/command/s6-sudod -t 30000 --\n"))

	// write_fdholder: the rules that let s6-rc's pipes in and out.
	want = append(skel(FDHolder),
		FDHolder+"/data/autofilled -rw-r--r--",
		FDHolder+"/data/rules/gid/0/env Lrwxrwxrwx -> ../../uid/0/env",
		FDHolder+"/data/rules/uid/0/env drwxr-xr-x",
		FDHolder+"/data/rules/uid/0/env/S6_FDHOLDER_GETDUMP -rw-r--r--",
		FDHolder+"/data/rules/uid/0/env/S6_FDHOLDER_LIST -rw-r--r--",
		FDHolder+"/data/rules/uid/0/env/S6_FDHOLDER_RETRIEVE_REGEX Lrwxrwxrwx -> S6_FDHOLDER_STORE_REGEX",
		FDHolder+"/data/rules/uid/0/env/S6_FDHOLDER_SETDUMP -rw-r--r--",
		FDHolder+"/data/rules/uid/0/env/S6_FDHOLDER_STORE_REGEX -rw-r--r--",
		FDHolder+"/down -rw-r--r--", FDHolder+"/event dgtrwx-wx---", FDHolder+"/notification-fd -rw-r--r--", FDHolder+"/run -rwxr-xr-x")
	sort.Strings(want)
	assert.Check(t, is.DeepEqual(internal(FDHolder), want))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, FDHolder, "notification-fd")), "1\n"))
	assert.Check(t, is.Equal(read(t, filepath.Join(sd, FDHolder, "data/rules/uid/0/env/S6_FDHOLDER_STORE_REGEX")), "^pipe:s6rc-\n"))
	fdholder := read(t, filepath.Join(sd, FDHolder, "run"))
	assert.Check(t, strings.HasPrefix(fdholder, "#!/command/execlineb -P\n# Laid by the hermes-s6 debian stage layer as s6-rc-compile writes\n"))
	assert.Check(t, strings.HasSuffix(fdholder, "  /command/s6-svc -t .\n}\n/command/s6-fdholder-daemon -1 -n 256 -i data/rules -- s\n"))

	// s6-linux-init-maker.c, make_image: a plain directory in the scan
	// directory, never down.
	sh := filepath.Join(p.ScanDir, Shutdownd)
	assert.Check(t, is.Equal(read(t, filepath.Join(sh, "notification-fd")), "3\n"))
	assert.Check(t, is.Contains(read(t, filepath.Join(sh, "run")), "# Laid by the hermes-s6 debian stage layer in the place of\n# s6-linux-init-shutdownd"))
	_, err := os.Stat(filepath.Join(sh, "down"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))
}

func TestLayServicesLeavesEveryS6RcServiceDown(t *testing.T) {
	// s6-rc-init links with "don't start the service": every s6-rc service
	// has a down file, those of the user bundle included; s6-rc -u change
	// (BootServices) removes it from what it starts.
	p := lay(t)
	for _, n := range s6rcServices {
		_, err := os.Stat(filepath.Join(p.ScanDir, n, "down"))
		assert.Check(t, err, "%s is down", n)
	}
	_, err := os.Stat(filepath.Join(p.DB, "servicedirs", "main-hermes", "down"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist), "the compiled copy has no down file")
}

func TestLayServicesWithoutSource(t *testing.T) {
	p := testPaths(t, "/command")
	assert.NilError(t, LayServices(p), "no s6-rc.d: only s6-overlay's own services")
	var names []string
	entries, err := os.ReadDir(p.ScanDir)
	assert.NilError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Check(t, is.DeepEqual(names, []string{Shutdownd, FDHolder, OneshotRunner}))
	assert.Check(t, is.Equal(read(t, filepath.Join(p.DB, "servicedirs", FDHolder, "data", "autofilled")), ""))
}

func TestLayServicesRefusesWhatS6RcCompileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, rcd string)
		err   string
	}{
		{"reserved prefix", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "s6rc-mine", "type"), "longrun\n", 0o644)
		}, "identifier s6rc-mine starts with reserved prefix"},
		{"s6-linux-init's name", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, Shutdownd, "type"), "longrun\n", 0o644)
		}, "identifier s6-linux-init-shutdownd is taken"},
		{"s6-overlay's name", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "base", "type"), "bundle\n", 0o644)
			write(t, filepath.Join(rcd, "base", "contents"), "", 0o644)
		}, "duplicate service definition: base"},
		{"no type", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "run"), "", 0o755)
		}, "svc/type: must be oneshot, longrun, or bundle"},
		{"no run", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
		}, "unable to find a run script in "},
		{"logger missing", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
			write(t, filepath.Join(rcd, "svc", "run"), "", 0o755)
			write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
		}, "longrun service svc declares being a producer for a service named svc-log of type unknown"},
		{"logger does not declare it back", func(t *testing.T, rcd string) {
			for _, n := range []string{"svc", "svc-log"} {
				write(t, filepath.Join(rcd, n, "type"), "longrun\n", 0o644)
				write(t, filepath.Join(rcd, n, "run"), "", 0o755)
			}
			write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
		}, "that does not declare it back"},
		{"undefined dependency", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
			write(t, filepath.Join(rcd, "svc", "run"), "", 0o755)
			write(t, filepath.Join(rcd, "svc", "dependencies.d", "nothing"), "", 0o644)
		}, "during dependency resolution for service svc: undefined service name nothing"},
		{"dependency cycle", func(t *testing.T, rcd string) {
			for _, n := range [][2]string{{"a", "b"}, {"b", "a"}} {
				write(t, filepath.Join(rcd, n[0], "type"), "longrun\n", 0o644)
				write(t, filepath.Join(rcd, n[0], "run"), "", 0o755)
				write(t, filepath.Join(rcd, n[0], "dependencies.d", n[1]), "", 0o644)
			}
		}, "dependency cycle involving a, b"},
		{"bad notification-fd", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
			write(t, filepath.Join(rcd, "svc", "run"), "", 0o755)
			write(t, filepath.Join(rcd, "svc", "notification-fd"), "three", 0o644)
		}, "laying svc: invalid "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPaths(t, "/command")
			tc.setup(t, p.RcD)
			assert.Check(t, is.ErrorContains(LayServices(p), tc.err))
		})
	}

	t.Run("scan entry taken", func(t *testing.T) {
		p := testPaths(t, "/command")
		rcTree(t, p.RcD)
		write(t, filepath.Join(p.ScanDir, "main-hermes"), "a file where the link goes", 0o644)
		assert.Check(t, is.ErrorContains(LayServices(p), "laying main-hermes: "))
	})
}

func TestPlanBringsUpTheUserBundlesClosure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root, rcd string)
		rest  []string
	}{
		{"empty user bundle", func(t *testing.T, root, rcd string) {}, nil},
		{"a longrun", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(rcd, "user", "contents.d", "main-hermes"), "", 0o644)
		}, []string{"main-hermes"}},
		{"a producer brings its logger and the fdholder, before it", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(rcd, "user", "contents.d", "gateway-default"), "", 0o644)
		}, []string{FDHolder, "gateway-default-log", "gateway-default"}},
		{"a pipeline name", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(rcd, "user", "contents.d", "gateway-default-pipeline"), "", 0o644)
		}, []string{FDHolder, "gateway-default-log", "gateway-default"}},
		{"user-bundles.d (s6-overlay 3.2.3.2)", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(root, "user-bundles.d", "user", "contents.d", "hermes-admin"), "", 0o644)
		}, []string{"hermes-admin"}},
		{"user2 and a nested bundle", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(rcd, "admin", "type"), "bundle\n", 0o644)
			write(t, filepath.Join(rcd, "admin", "contents"), "# the admin\n  hermes-admin\n", 0o644)
			write(t, filepath.Join(rcd, "user2", "type"), "bundle\n", 0o644)
			write(t, filepath.Join(rcd, "user2", "contents.d", "admin"), "", 0o644)
		}, []string{"hermes-admin"}},
		{"dependencies come first, through oneshots", func(t *testing.T, root, rcd string) {
			write(t, filepath.Join(rcd, "init-setup", "dependencies.d", "hermes-admin"), "", 0o644)
			write(t, filepath.Join(rcd, "main-hermes", "dependencies.d", "init-setup"), "", 0o644)
			write(t, filepath.Join(rcd, "user", "contents.d", "main-hermes"), "", 0o644)
		}, []string{"hermes-admin", "main-hermes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rcd := filepath.Join(root, "s6-rc.d")
			rcTree(t, rcd)
			tc.setup(t, root, rcd)
			plan, err := Plan(rcd)
			assert.NilError(t, err)
			assert.Check(t, is.DeepEqual(plan.First, []string{OneshotRunner}), "s6-overlay's base always has oneshots")
			assert.Check(t, is.DeepEqual(plan.Rest, tc.rest))
		})
	}

	root := t.TempDir()
	rcd := filepath.Join(root, "s6-rc.d")
	rcTree(t, rcd)
	write(t, filepath.Join(rcd, "user", "contents.d", "gateway-default"), "", 0o644)
	write(t, filepath.Join(rcd, "user", "contents.d", "main-hermes"), "", 0o644)
	plan, err := Plan(rcd)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(plan.Needs["gateway-default"], []string{"gateway-default-log", FDHolder}))
	assert.Check(t, is.DeepEqual(plan.Needs["gateway-default-log"], []string{FDHolder}))
	assert.Check(t, is.Equal(plan.TimeoutUp["main-hermes"], uint64(4000)))

	_, err = Plan(filepath.Join(root, "missing"))
	assert.NilError(t, err)
	write(t, filepath.Join(rcd, "bad", "type"), "daemon\n", 0o644)
	_, err = Plan(rcd)
	assert.Check(t, is.ErrorContains(err, "bad/type: must be oneshot, longrun, or bundle"))
}

func TestNameList(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "list"), "a\n  b\n# c\n\n\ta\nd", 0o644)
	got, err := nameList(filepath.Join(dir, "list"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"a", "b", "d"}))
	got, err = nameList(filepath.Join(dir, "missing"))
	assert.NilError(t, err)
	assert.Check(t, got == nil)
}
