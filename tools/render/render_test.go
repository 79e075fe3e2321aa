package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/slotexec"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

func goldenSlots() map[string]Slot {
	work := GatewaySlot("work")
	work.Env = map[string]string{
		"API_SERVER_PORT": "8650",
		"ODD":             "it's $HOME `id` \"q\"\nline2 \\",
	}
	up := GatewaySlot("default")
	up.Down = false
	return map[string]Slot{
		"gateway-default": GatewaySlot("default"),
		"gateway-up":      up,
		"gateway-work":    work,
		"dashboard":       DashboardSlot(),
	}
}

func TestGoldenFiles(t *testing.T) {
	for name, slot := range goldenSlots() {
		t.Run(name, func(t *testing.T) {
			files, err := Files(slot)
			assert.NilError(t, err)
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
				golden.Assert(t, string(f.Data), filepath.Join(name, strings.ReplaceAll(f.Path, "/", "_")+".golden"))
			}
			want := []string{IdentityFile, "type", "run", "finish", "log/type", "log/run"}
			if len(slot.Probe) > 0 {
				want = append(want, "notification-fd")
			}
			if slot.Down {
				want = append(want, "down")
			}
			assert.DeepEqual(t, paths, want)
		})
	}
}

// runArgv runs the rendered run script of slot with its Tool and
// s6-notifyoncheck replaced by scripts that print their arguments: the words
// sh hands to slot-exec, and the readiness check s6-notifyoncheck would run
// ("" without one).
func runArgv(t testing.TB, slot Slot) (argv []string, check string) {
	t.Helper()
	dir := t.TempDir()
	slot.Tool = filepath.Join(dir, "hermes-s6")
	printer := []byte("#!/bin/sh\nprintf '%s\\0' \"${0##*/}\" \"$@\"\n")
	for _, p := range []string{slot.Tool, filepath.Join(dir, "s6-notifyoncheck")} {
		if err := os.WriteFile(p, printer, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(filepath.Join(dir, "svc"), slot); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "svc", "run"))
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	argv = strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if argv[0] == "s6-notifyoncheck" {
		want := []string{"-d", "-s", "0", "-w", "100", "-n", "0", "-c"}
		if len(argv) < 11 || !slices.Equal(argv[1:9], want) || argv[10] != slot.Tool {
			t.Fatalf("s6-notifyoncheck %q: want %q CHECK %s ...", argv[1:], want, slot.Tool)
		}
		check = strings.ReplaceAll(argv[9], slot.Tool, "TOOL")
		argv = append([]string{"hermes-s6"}, argv[11:]...)
	}
	if argv[0] != "hermes-s6" {
		t.Fatalf("the run script execs %q, not hermes-s6", argv[0])
	}
	return argv[1:], check
}

// command splits slot-exec's arguments at "--" and expands the command as
// slot-exec does, from env.
func command(t testing.TB, argv, env []string) (opts, cmd []string) {
	t.Helper()
	for i, a := range argv {
		if a == "--" {
			cmd, err := slotexec.Expand(argv[i+1:], env)
			if err != nil {
				t.Fatal(err)
			}
			return argv[:i], cmd
		}
	}
	t.Fatalf("no -- in %q", argv)
	return nil, nil
}

func TestEveryRunScriptSetsTheRecursionGuard(t *testing.T) {
	for name, slot := range goldenSlots() {
		argv, _ := runArgv(t, slot)
		opts, _ := command(t, argv, nil)
		assert.Check(t, is.DeepEqual(opts[:4], []string{"slot-exec", "-user", "hermes", "-env"}), name)
		assert.Check(t, is.Equal(opts[4], "HERMES_S6_SUPERVISED_CHILD=1"), name)
	}
}

func TestGatewayRunScriptRunsTheProfileWithReplace(t *testing.T) {
	argv, check := runArgv(t, GatewaySlot("work"))
	_, cmd := command(t, argv, nil)
	assert.Check(t, is.DeepEqual(cmd, []string{"/usr/local/bin/hermes", "-p", "work", "gateway", "run", "--replace"}))
	assert.Check(t, is.Equal(check, "TOOL slot-exec -user hermes -- TOOL probe work"),
		"the readiness probe runs as the slot's user, with the container environment")
	argv, check = runArgv(t, GatewaySlot("default"))
	_, cmd = command(t, argv, nil)
	assert.Check(t, is.DeepEqual(cmd, []string{"/usr/local/bin/hermes", "gateway", "run", "--replace"}))
	assert.Check(t, is.Equal(check, "TOOL slot-exec -user hermes -- TOOL probe default"))
	_, check = runArgv(t, DashboardSlot())
	assert.Check(t, is.Equal(check, ""), "no probe, no s6-notifyoncheck")
}

func TestValidateRejectsBadSlots(t *testing.T) {
	for _, tc := range []struct {
		name string
		slot Slot
		want string
	}{
		{"empty name", Slot{Command: Lit("x")}, "invalid slot name"},
		{"slash", Slot{Name: "a/b", Command: Lit("x")}, "invalid slot name"},
		{"dot", Slot{Name: ".a", Command: Lit("x")}, "invalid slot name"},
		{"no command", Slot{Name: "a"}, "empty command"},
		{"env name", Slot{Name: "a", Command: Lit("x"), Env: map[string]string{"A-B": "1"}}, "invalid environment variable name"},
		{"arg env", Slot{Name: "a", Command: []Arg{{Env: "1X"}}}, "invalid environment variable name"},
		{"log name", Slot{Name: "a", Command: Lit("x"), LogName: "../x"}, "invalid log name"},
		{"probe word", Slot{Name: "a", Command: Lit("x"), Probe: []string{"check", "a b"}}, "must be a plain word"},
		{"probe user", Slot{Name: "a", Command: Lit("x"), User: "a b", Probe: []string{"check"}}, "must be plain words for the readiness probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Write(filepath.Join(dir, "svc"), tc.slot)
			assert.ErrorContains(t, err, tc.want)
			_, statErr := os.Stat(filepath.Join(dir, "svc"))
			assert.Check(t, os.IsNotExist(statErr), "nothing may be written for a bad slot")
		})
	}
}

func TestWriteKeepsSupervisorStateAndTogglesDown(t *testing.T) {
	dir := t.TempDir()
	slot := GatewaySlot("default")
	assert.NilError(t, Write(dir, slot))
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "supervise"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "supervise", "status"), []byte("x"), 0o644))
	_, err := os.Stat(filepath.Join(dir, "down"))
	assert.NilError(t, err)

	slot.Down = false
	assert.NilError(t, Write(dir, slot))
	_, err = os.Stat(filepath.Join(dir, "down"))
	assert.Check(t, os.IsNotExist(err), "down marker must go when the slot is not down")
	_, err = os.Stat(filepath.Join(dir, "supervise", "status"))
	assert.NilError(t, err, "re-rendering must not touch supervise/")
	st, err := os.Stat(filepath.Join(dir, "run"))
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o755))
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.render"))
	assert.Check(t, is.Len(leftovers, 0))
}

func TestDashboardArgsExpandFromEnvironment(t *testing.T) {
	argv, _ := runArgv(t, DashboardSlot())
	_, cmd := command(t, argv, nil)
	assert.Check(t, is.DeepEqual(cmd, []string{"/usr/local/bin/hermes", "dashboard", "--host", "127.0.0.1", "--port", "9119", "--no-open"}))
	_, cmd = command(t, argv, []string{"HERMES_DASHBOARD_HOST=0.0.0.0", "HERMES_DASHBOARD_PORT="})
	assert.Check(t, is.DeepEqual(cmd, []string{"/usr/local/bin/hermes", "dashboard", "--host", "0.0.0.0", "--port", "9119", "--no-open"}), "an empty value takes the default, as ${X:-d} in sh")
}

// TestFinishMapsExitConfigTo125 runs the rendered finish script with the
// arguments s6-supervise gives it.
func TestFinishMapsExitConfigTo125(t *testing.T) {
	// The agent's codes (hermes-agent 00067189, gateway/restart.py and its
	// own finish script): 78 fatal configuration and, for a gateway, 0 a
	// clean stop are final; 75 (restart request), 1 (crash, unexpected
	// SIGTERM) and signals restart.
	dir := t.TempDir()
	assert.NilError(t, Write(dir, GatewaySlot("default")))
	dash := t.TempDir()
	assert.NilError(t, Write(dash, DashboardSlot()))
	for _, tc := range []struct {
		dir  string
		args []string
		want int
	}{
		{dir, []string{"78", "0"}, 125},
		{dir, []string{"0", "0"}, 125},
		{dir, []string{"1", "0"}, 0},
		{dir, []string{"75", "0"}, 0},
		{dir, []string{"256", "15"}, 0}, // SIGTERM during startup: restart, never permanently down
		{dir, []string{"143", "0"}, 0},
		{dir, []string{"256", "9"}, 0},
		{dash, []string{"78", "0"}, 125},
		{dash, []string{"0", "0"}, 0},
		{dash, []string{"1", "0"}, 0},
	} {
		cmd := exec.Command(filepath.Join(tc.dir, "finish"), tc.args...)
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			assert.NilError(t, err)
		}
		assert.Check(t, is.Equal(code, tc.want), "finish %v", tc.args)
	}
}

// roundTrip renders value as an -env value and as a command word and
// returns what slot-exec would get for each.
func roundTrip(t testing.TB, value string) (env, word string) {
	argv, _ := runArgv(t, Slot{Name: "x", Kind: KindDashboard, Command: Lit(value), Env: map[string]string{"V": value}})
	opts, cmd := command(t, argv, nil)
	return strings.TrimPrefix(opts[len(opts)-1], "V="), cmd[len(cmd)-1]
}

func TestQuotingRoundTrips(t *testing.T) {
	for _, v := range []string{"", "plain", "it's", `"$HOME"`, "${HOME}", "$$", "`id`", "a\nb\n", `\`, "$(touch /tmp/pwned)", "'; exit 1; '", "-- -x"} {
		env, word := roundTrip(t, v)
		assert.Check(t, is.Equal(env, v), "-env value")
		assert.Check(t, is.Equal(word, v), "command word")
	}
}

func FuzzQuotingRoundTrips(f *testing.F) {
	for _, s := range []string{"", "a b", "it's", "$x", "${x:-y}", "`x`", "\n", `\\`, "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsRune(v, 0) {
			t.Skip("arguments cannot hold NUL")
		}
		if env, word := roundTrip(t, v); env != v || word != v {
			t.Fatalf("round trip through /bin/sh and slot-exec: got %q and %q, want %q", env, word, v)
		}
	})
}

func TestIdentityNamesWhatASlotSupervises(t *testing.T) {
	for _, c := range []struct {
		slot Slot
		want Identity
		text string
	}{
		{GatewaySlot("work"), Identity{KindGateway, "work"}, "gateway work\n"},
		{GatewaySlot("default"), Identity{KindGateway, "default"}, "gateway default\n"},
		{DashboardSlot(), Identity{Kind: KindDashboard}, "dashboard\n"},
	} {
		dir := filepath.Join(t.TempDir(), c.slot.Name)
		assert.NilError(t, Write(dir, c.slot))
		b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(b), c.text))
		id, err := ReadIdentity(dir)
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(id, c.want))
	}
}

func TestReadIdentityRefusesWhatIsNotASlot(t *testing.T) {
	root := t.TempDir()
	// A directory without the file: an s6-rc logger, s6-overlay's services.
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "gateway-default-log"), 0o755))
	_, err := ReadIdentity(filepath.Join(root, "gateway-default-log"))
	assert.Check(t, os.IsNotExist(err))
	// A symlinked directory (s6-rc's live directories), even with the file.
	slot := filepath.Join(root, "real")
	assert.NilError(t, Write(slot, GatewaySlot("x")))
	assert.NilError(t, os.Symlink(slot, filepath.Join(root, "gateway-x")))
	_, err = ReadIdentity(filepath.Join(root, "gateway-x"))
	assert.Check(t, is.ErrorContains(err, "is not a directory"))
	// Contents that say nothing known.
	for _, bad := range []string{"", "gateway", "gateway a b", "logger x", "dashboard x"} {
		_, err := ParseIdentity([]byte(bad))
		assert.Check(t, is.ErrorContains(err, "unexpected contents"), "%q", bad)
	}
}

func TestValidateWantsAKindThatFitsTheProfile(t *testing.T) {
	for _, s := range []Slot{
		{Name: "x", Command: Lit("a")},
		{Name: "x", Kind: KindGateway, Command: Lit("a")},
		{Name: "x", Kind: KindDashboard, Profile: "p", Command: Lit("a")},
		{Name: "x", Kind: KindGateway, Profile: "a b", Command: Lit("a")},
		{Name: "x", Kind: "logger", Profile: "p", Command: Lit("a")},
	} {
		assert.Check(t, is.ErrorContains(s.Validate(), "want a gateway with a profile, or the dashboard"), "%+v", s)
	}
}
