package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	is "gotest.tools/v3/assert/cmp"

	"gotest.tools/v3/assert"
)

// files lists the files under dir with their contents.
func filesUnder(t *testing.T, dir string) map[string]string {
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

func wantFiles(t *testing.T, fs []File, prefix string) map[string]string {
	out := map[string]string{}
	for _, f := range fs {
		out[filepath.Join(prefix, f.Path)+" "+f.Mode.String()] = string(f.Data)
	}
	return out
}

func TestRenderRunWritesScandirLayout(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	code := Command([]string{"-out", out, "gateway-default", "dashboard", "gateway-work"}, &stderr)
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Equal(stderr.String(), ""))
	expected := map[string]string{}
	for _, s := range []Slot{GatewaySlot("default"), DashboardSlot(), GatewaySlot("work")} {
		fs, err := Files(s)
		assert.NilError(t, err)
		for k, v := range wantFiles(t, fs, s.Name) {
			expected[k] = v
		}
	}
	assert.Check(t, is.DeepEqual(filesUnder(t, out), expected))
	assert.Check(t, is.Contains(filesUnder(t, out)["gateway-default/run -rwxr-xr-x"], " -env HERMES_S6_SUPERVISED_CHILD=1 "))
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
			var stderr bytes.Buffer
			code := Command(tc.args, &stderr)
			assert.Check(t, is.Equal(code, 2))
			assert.Check(t, is.Contains(stderr.String(), tc.msg))
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
		var stderr bytes.Buffer
		code := Command(args, &stderr)
		assert.Check(t, is.Equal(code, 1), "%q", args)
		assert.Check(t, is.Contains(stderr.String(), "render-run: render: "), "%q", args)
	}
}
