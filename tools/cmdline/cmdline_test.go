package cmdline

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		profile    string
		hasProfile bool
		global     []string
		rest       []string
	}{
		{nil, "default", false, nil, nil},
		{[]string{"gateway", "run"}, "default", false, nil, []string{"gateway", "run"}},
		{[]string{"-p", "work", "gateway", "run"}, "work", true, []string{"-p", "work"}, []string{"gateway", "run"}},
		{[]string{"--profile", "work", "chat"}, "work", true, []string{"--profile", "work"}, []string{"chat"}},
		{[]string{"--profile=work", "chat"}, "work", true, []string{"--profile=work"}, []string{"chat"}},
		// The last one wins, whatever the spelling (argparse's rule).
		{[]string{"--profile=a", "-p", "b", "gateway", "run"}, "b", true, []string{"--profile=a", "-p", "b"}, []string{"gateway", "run"}},
		{[]string{"-p", "a", "--profile=b"}, "b", true, []string{"-p", "a", "--profile=b"}, nil},
		// Options after the command are the command's.
		{[]string{"chat", "-p", "x"}, "default", false, nil, []string{"chat", "-p", "x"}},
	} {
		l, err := Parse(tc.args)
		assert.NilError(t, err, "%q", tc.args)
		assert.Check(t, is.Equal(l.Profile, tc.profile), "%q", tc.args)
		assert.Check(t, is.Equal(l.HasProfile, tc.hasProfile), "%q", tc.args)
		assert.Check(t, is.DeepEqual(l.Global, tc.global), "%q", tc.args)
		assert.Check(t, is.DeepEqual(l.Rest, tc.rest), "%q", tc.args)
	}
}

func TestParseRefusesBadProfiles(t *testing.T) {
	for want, args := range map[string][]string{
		"-p needs a profile name":        {"-p"},
		"--profile needs a profile name": {"--profile"},
		"invalid profile name":           {"-p", "../etc", "gateway", "run"},
		"profile name":                   {"--profile=", "chat"},
	} {
		_, err := Parse(args)
		var ue *UsageError
		assert.Check(t, errors.As(err, &ue), "%q: want a UsageError, have %v", args, err)
		assert.Check(t, is.ErrorContains(err, want), "%q", args)
	}
}

func TestParseCMD(t *testing.T) {
	for _, cmd := range [][]string{
		{"hermes", "--profile=a", "-p", "b", "gateway", "run"},
		{"/usr/local/bin/hermes", "-p", "b", "gateway", "run"},
		{"-p", "b", "gateway", "run"},
	} {
		l, err := ParseCMD(cmd)
		assert.NilError(t, err)
		args, ok := l.GatewayRun()
		assert.Check(t, ok, "%q is gateway run", cmd)
		assert.Check(t, is.Len(args, 0))
		assert.Check(t, is.Equal(l.Profile, "b"), "%q", cmd)
	}
	l, err := ParseCMD([]string{"hermes-agent", "gateway", "run"})
	assert.NilError(t, err)
	_, ok := l.GatewayRun()
	assert.Check(t, !ok, "another program's command line is not ours")
}

func TestOptOut(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		out  bool
		why  string
	}{
		{nil, nil, false, ""},
		{[]string{"--no-supervise"}, nil, true, "--no-supervise"},
		{[]string{"--replace", "--no-supervise"}, nil, true, "--no-supervise"},
		{[]string{"--", "--no-supervise"}, nil, false, ""}, // an argument, not a flag
		{nil, map[string]string{NoSuperviseEnv: "YES"}, true, NoSuperviseEnv + "=YES"},
		{nil, map[string]string{NoSuperviseEnv: "0"}, false, ""},
		{nil, map[string]string{NoSuperviseEnv: "on"}, false, ""}, // strict truthiness
	} {
		out, why := OptOut(tc.args, env(tc.env))
		assert.Check(t, is.Equal(out, tc.out), "%q %v", tc.args, tc.env)
		assert.Check(t, is.Equal(why, tc.why), "%q %v", tc.args, tc.env)
	}
}

func TestIs(t *testing.T) {
	l := Line{Rest: []string{"profile", "create", "x"}}
	assert.Check(t, l.Is("profile"))
	assert.Check(t, l.Is("profile", "create"))
	assert.Check(t, !l.Is("profile", "delete"))
	assert.Check(t, !l.Is("profile", "create", "x", "y"))
}

func TestOwnership(t *testing.T) {
	for _, tc := range []struct {
		cmd        []string
		env        string
		owner      string
		noGateways bool
	}{
		{nil, "", "", false},
		{[]string{"hermes", "gateway", "run"}, "", "", false},
		{[]string{"hermes", "gateway", "run"}, "true", "default", false},
		{[]string{"gateway", "run", "--no-supervise"}, "", "default", false},
		{[]string{"--profile=a", "-p", "b", "gateway", "run", "--no-supervise"}, "", "b", false},
		{[]string{"-p", "../x", "gateway", "run", "--no-supervise"}, "", "", false},
		{[]string{"/usr/local/bin/hermes", "-p", "work", "dashboard"}, "", "", true},
		{[]string{"chat"}, "1", "", false},
	} {
		owner, none := Ownership(tc.cmd, func(string) string { return tc.env })
		assert.Check(t, is.Equal(owner, tc.owner), "%q %s", tc.cmd, tc.env)
		assert.Check(t, is.Equal(none, tc.noGateways), "%q %s", tc.cmd, tc.env)
	}
}
