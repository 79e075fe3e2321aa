package front

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/hermes-agent/hermes-s6/tools/profile"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDecideAppliesTheGatesInOrder(t *testing.T) {
	const child, optOut = "HERMES_S6_SUPERVISED_CHILD", "HERMES_GATEWAY_NO_SUPERVISE"
	for _, tc := range []struct {
		name    string
		underS6 bool
		env     map[string]string
		args    []string
		want    Mode
		why     string
	}{
		{"supervised child under s6", true, map[string]string{child: "1"}, nil, Foreground, child + "=1 (already supervised)"},
		{"supervised child wins over the opt-outs", true, map[string]string{child: "1", optOut: "1"}, []string{"--no-supervise"}, Foreground, child + "=1 (already supervised)"},
		{"--no-supervise under s6", true, nil, []string{"--replace", "--no-supervise"}, Foreground, "--no-supervise"},
		{"opt-out variable under s6", true, map[string]string{optOut: "yes"}, nil, Foreground, optOut + "=yes"},
		{"neither under s6", true, nil, []string{"--replace"}, Redirect, "under s6 supervision"},
		{"a guard other than 1 is no guard", true, map[string]string{child: "true"}, nil, Redirect, "under s6 supervision"},
		{"--no-supervise after -- is an argument", true, nil, []string{"--", "--no-supervise"}, Redirect, "under s6 supervision"},
		{"not under s6", false, nil, nil, Foreground, "not under s6 as PID 1"},
		{"not under s6 comes first", false, map[string]string{child: "1", optOut: "1"}, []string{"--no-supervise"}, Foreground, "not under s6 as PID 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode, why := Decide(tc.underS6, envOf(tc.env), tc.args)
			assert.Check(t, is.Equal(mode, tc.want))
			assert.Check(t, is.Equal(why, tc.why))
		})
	}
}

func TestOptOutTruthinessIsStrict(t *testing.T) {
	for _, v := range []string{"1", "true", "TRUE", "yes", "Yes"} {
		mode, _ := Decide(true, envOf(map[string]string{NoSuperviseEnv: v}), nil)
		assert.Check(t, is.Equal(mode, Foreground), "%s=%q must opt out", NoSuperviseEnv, v)
	}
	for _, v := range []string{"0", "false", "no", "", "ture", " 1"} {
		mode, _ := Decide(true, envOf(map[string]string{NoSuperviseEnv: v}), nil)
		assert.Check(t, is.Equal(mode, Redirect), "%s=%q must not opt out", NoSuperviseEnv, v)
	}
}

func TestBreadcrumb(t *testing.T) {
	running := Breadcrumb("gateway-default", profile.Running)
	golden.Assert(t, running, "breadcrumb-running.golden")
	for _, must := range []string{"s6 supervision", "--no-supervise", "HERMES_GATEWAY_NO_SUPERVISE=1", "HERMES_DASHBOARD=1", "gateway-default"} {
		assert.Check(t, is.Contains(running, must))
	}
	golden.Assert(t, Breadcrumb("gateway-work", profile.Stopped), "breadcrumb-stopped.golden")
}

func TestForegroundExecsTheAgentWithArgvPreserved(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	res := h.run("-p", "work", "gateway", "run", "--replace", "--no-supervise", "--verbose")
	assert.Check(t, res.replaced, "the front must become the agent")
	assert.Assert(t, res.exec != nil)
	assert.Check(t, is.Equal(res.exec.Path, agentBin))
	assert.Check(t, is.DeepEqual(res.exec.Argv, []string{agentBin, "-p", "work", "gateway", "run", "--replace", "--no-supervise", "--verbose"}),
		"--no-supervise reaches the agent, or its own s6 redirect would supervise it after all")
	assert.Check(t, is.DeepEqual(res.exec.Env, append(h.front.Environ, "HOME="+home)))
	assert.Check(t, is.Equal(h.stderr.String(), ""), "no breadcrumb in the foreground")
}

func TestForegroundAgentMissing(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	h.execErr = os.ErrNotExist
	res := h.run("gateway", "run")
	assert.Check(t, !res.replaced)
	assert.Check(t, is.Equal(res.code, 127))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: cannot run the agent "+agentBin))
	assert.Check(t, is.Contains(h.stderr.String(), "set HERMES_AGENT_BIN"))
}

func TestUnknownCommandsAreHandedToTheAgent(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	for _, args := range [][]string{
		{"chat", "--model", "x y", "--", "-p"},
		{"-p", "work", "chat"},
		{"--profile=work", "config", "show"},
		{"gateway"},
		{"gateway", "install"},
		{"profile"},
		{"profile", "show", "work"},
		{},
	} {
		res := h.run(args...)
		assert.Check(t, res.replaced, "%q", args)
		assert.Assert(t, res.exec != nil, "%q", args)
		assert.Check(t, is.Equal(res.exec.Path, agentBin))
		assert.Check(t, is.DeepEqual(res.exec.Argv, append([]string{agentBin}, args...)))
		assert.Check(t, is.DeepEqual(res.exec.Env, append(h.front.Environ, "HOME="+home)))
	}
}

func TestHandOffUsesTheDefaultAgentBin(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	delete(h.env, "HERMES_AGENT_BIN")
	res := h.run("version")
	assert.Assert(t, res.exec != nil)
	assert.Check(t, is.DeepEqual(res.exec.Argv, []string{DefaultAgentBin, "version"}))
}

func TestHandOffFailureIs127(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	h.execErr = errors.New("exec format error")
	res := h.run("chat")
	assert.Check(t, is.Equal(res.code, 127))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: cannot run the agent "+agentBin+": exec format error (set HERMES_AGENT_BIN)\n"))
}

func TestBadProfileNamesTouchNothing(t *testing.T) {
	m, home := liveScan(t)
	h := newHermes(t, m, home)
	mkProfile(t, home, "work")
	before := tree(t, m.ScanDir, home)
	for _, name := range []string{"../x", "A", "-x", strings.Repeat("a", 64), "a/b", ""} {
		for _, args := range [][]string{
			{"-p", name, "gateway", "run"},
			{"-p", name, "gateway", "start"},
			{"--profile=" + name, "gateway", "stop"},
			{"--profile", name, "chat"},
			{"profile", "create", name},
			{"profile", "delete", name},
		} {
			res := h.run(args...)
			assert.Check(t, !res.replaced && res.exec == nil, "%q must not exec anything", args)
			assert.Check(t, is.Equal(res.code, 2), "%q", args)
			assert.Check(t, is.Contains(h.stderr.String(), "invalid profile name"), "%q", args)
		}
	}
	assert.Check(t, is.Len(h.runs, 0), "the agent must not run")
	assert.Check(t, is.DeepEqual(tree(t, m.ScanDir, home), before))
}

func TestProfileOptionNeedsAName(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	for _, opt := range []string{"-p", "--profile"} {
		res := h.run(opt)
		assert.Check(t, is.Equal(res.code, 2))
		assert.Check(t, is.Equal(h.stderr.String(), "hermes: "+opt+" needs a profile name\n"))
	}
}

func TestGatewayVerbsNeedS6(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	for _, verb := range []string{"start", "stop", "restart", "status"} {
		res := h.run("gateway", verb)
		assert.Check(t, is.Equal(res.code, 1), verb)
		assert.Check(t, is.Contains(h.stderr.String(), "`gateway "+verb+"` needs s6 supervision"), verb)
	}
}

func TestGatewayControlArguments(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"gateway", "start", "--all"}, "refusing `gateway start --all`: start gateways one at a time with `hermes -p NAME gateway start`"},
		{[]string{"-p", "work", "gateway", "stop", "--all"}, "gateway stop: use either -p NAME or --all, not both"},
		{[]string{"gateway", "restart", "--force"}, `gateway restart: unknown argument "--force"`},
	} {
		res := h.run(tc.args...)
		assert.Check(t, is.Equal(res.code, 2), "%q", tc.args)
		assert.Check(t, is.Equal(h.stderr.String(), "hermes: "+tc.msg+"\n"), "%q", tc.args)
	}
}

func TestProfileArguments(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"profile", "list", "x"}, "profile list takes no arguments"},
		{[]string{"profile", "create"}, "usage: hermes profile create NAME"},
		{[]string{"profile", "delete", "a", "b"}, "usage: hermes profile delete NAME"},
		{[]string{"profile", "create", "default"}, "the default profile always exists and cannot be created"},
		{[]string{"profile", "delete", "default"}, "the default profile always exists and cannot be deleted"},
	} {
		res := h.run(tc.args...)
		assert.Check(t, is.Equal(res.code, 2), "%q", tc.args)
		assert.Check(t, is.Equal(h.stderr.String(), "hermes: "+tc.msg+"\n"), "%q", tc.args)
	}
	assert.Check(t, is.Len(h.runs, 0))
	_, err := os.Stat(filepath.Join(home, "profiles"))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
}

func TestProfileCreateAndDeleteWithoutS6(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	h.agent = fakeAgent(home)
	res := h.run("profile", "create", "work")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "created profile work\n"))
	assert.Check(t, is.DeepEqual(h.runs[0].Argv, []string{agentBin, "profile", "create", "work"}))
	assert.Check(t, is.DeepEqual(h.runs[0].Env, append(h.front.Environ, "HOME="+home)))

	res = h.run("profile", "list")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "default\nwork\n"))

	res = h.run("profile", "delete", "work")
	assert.Check(t, is.Equal(res.code, 0))
	assert.Check(t, is.Equal(h.stdout.String(), "deleted profile work\n"))
	assert.Check(t, !profile.Exists(home, "work"))

	res = h.run("profile", "delete", "work")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: no such profile 'work'\n"))
}

func TestProfileCreateAgentFailures(t *testing.T) {
	home := t.TempDir()
	h := newHermes(t, nil, home)
	h.agent = func([]string) (int, error) { return 3, nil }
	res := h.run("profile", "create", "work")
	assert.Check(t, is.Equal(res.code, 3), "the agent's exit code is ours")
	assert.Check(t, is.Equal(h.stdout.String(), ""))

	h.agent = func([]string) (int, error) { return 0, os.ErrPermission }
	res = h.run("profile", "create", "work")
	assert.Check(t, is.Equal(res.code, 127))
	assert.Check(t, is.Contains(h.stderr.String(), "cannot run the agent "+agentBin))
}

func TestProfileListFailure(t *testing.T) {
	home := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles"), nil, 0o644))
	h := newHermes(t, nil, home)
	res := h.run("profile", "list")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Contains(h.stderr.String(), "hermes: listing profiles: "))
}

func TestHealthcheckOutsideS6(t *testing.T) {
	h := newHermes(t, nil, t.TempDir())
	res := h.run("healthcheck")
	assert.Check(t, is.Equal(res.code, 1))
	assert.Check(t, is.Equal(h.stderr.String(), "hermes: unhealthy: not under s6 supervision\n"))
}

// fakeAgent creates and deletes profile directories as the real agent does.
func fakeAgent(home string) func([]string) (int, error) {
	return func(argv []string) (int, error) {
		if (len(argv) == 4 || len(argv) == 5 && argv[4] == "--yes") && argv[1] == "profile" {
			dir := filepath.Join(home, "profiles", argv[3])
			switch argv[2] {
			case "create":
				return 0, os.MkdirAll(dir, 0o755)
			case "delete":
				return 0, os.RemoveAll(dir)
			}
		}
		return 64, nil
	}
}

func TestOwnVerbsRefuseASystemDirectoryAsHome(t *testing.T) {
	h := newHermes(t, nil, "/")
	for _, args := range [][]string{
		{"gateway", "run"}, {"gateway", "status"}, {"profile", "create", "x"}, {"profile", "list"}, {"healthcheck"},
	} {
		res := h.run(args...)
		assert.Check(t, is.Equal(res.code, 1), "%q", args)
		assert.Check(t, is.Contains(h.stderr.String(), `hermes: HERMES_HOME="/" is the root directory`), "%q", args)
		assert.Check(t, !res.replaced, "%q: nothing run", args)
	}
	// The agent's own commands are the agent's business.
	res := h.run("version")
	assert.Check(t, res.replaced)
}
