package standin

// gateway run refusing to start: nothing is started and no runtime file is
// written; each refusal has its exit code and says why.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestGatewayRefusesToStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config string
		env    func(t *testing.T, home string) []string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"fail_start hook", "standin:\n  fail_start: true\n", nil, nil, exitConfig, "",
			"[stand-in hook] %CONFIG% sets standin.fail_start: true; refusing to start like a fatal configuration error (exit 78)\n"},
		{"mistyped hook", "standin:\n  stop_delay: 5\n", nil, nil, exitConfig, "",
			"standin.stop_delay: unknown stand-in test hook (known: stop_delay_ms, fail_start); refusing to start (exit 78)\n"},
		{"unwritable env dump", "", func(t *testing.T, home string) []string {
			return []string{"HERMES_STANDIN_ENV_DUMP=" + filepath.Join(home, "no", "such", "dir", "env.txt")}
		}, nil, exitFailure, "", "[stand-in hook] cannot write HERMES_STANDIN_ENV_DUMP: "},
		{"unknown flag", "", nil, []string{"--daemon"}, exitUsage, "", "gateway run: error: unrecognized arguments: --daemon\n"},
		{"unknown bundled flag", "", nil, []string{"-vx"}, exitUsage, "", "unrecognized arguments: -vx\n"},
		{"help", "", nil, []string{"-vh"}, exitOK, runUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			if tc.config != "" {
				writeFile(t, filepath.Join(home, "config.yaml"), tc.config)
			}
			var extra []string
			if tc.env != nil {
				extra = tc.env(t, home)
			}
			g := startInProcess(t, baseEnv(home, extra...), append([]string{"gateway", "run"}, tc.args...)...)
			assert.Equal(t, g.wait(t), tc.code)
			if tc.stdout != "" {
				assert.Check(t, is.Equal(g.stdout.String(), tc.stdout))
			}
			want := strings.ReplaceAll(tc.stderr, "%CONFIG%", filepath.Join(home, "config.yaml"))
			assert.Check(t, is.Contains(g.stderr.String(), want))
			for _, f := range []string{pidFileName, runtimeStatusFile, lockFileName} {
				assert.Check(t, !fileExists(filepath.Join(home, f)), "%s written by a refused start", f)
			}
		})
	}
}

// A HERMES_HOME that cannot be created (a file is in the way) is logged and
// the gateway exits 1, leaving the file as it was.
func TestGatewayWithAnUncreatableHomeExits1(t *testing.T) {
	t.Parallel()
	blocker := filepath.Join(t.TempDir(), "file")
	writeFile(t, blocker, "keep\n")
	home := filepath.Join(blocker, "home")
	g := startInProcess(t, baseEnv(home), "gateway", "run")
	assert.Equal(t, g.wait(t), exitFailure)
	assert.Check(t, is.Contains(g.stderr.String(), "ERROR gateway.run: Cannot create HERMES_HOME "+home+": "))
	b, err := os.ReadFile(blocker)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "keep\n"))
}
